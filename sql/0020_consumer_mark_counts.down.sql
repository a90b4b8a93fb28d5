DROP TRIGGER consumer_processed_counted_on_delete ON consumer_processed;
DROP TRIGGER consumer_processed_counted_on_insert ON consumer_processed;
DROP FUNCTION count_consumer_marks();
DROP TABLE consumer_mark_counts;
