-- 0020: how many processed marks each consumer holds, so the API can bound
-- them per consumer (api.maxMarksPerConsumer) without counting the
-- consumer's rows of consumer_processed on every request.

CREATE TABLE consumer_mark_counts (
  consumer text PRIMARY KEY CHECK (consumer ~ '^[A-Za-z0-9_.-]{1,64}$'),
  marks    bigint NOT NULL CHECK (marks >= 0)
);

INSERT INTO consumer_mark_counts (consumer, marks)
SELECT consumer, count(*) FROM consumer_processed GROUP BY consumer;

-- Kept by statement triggers on consumer_processed: the rows a statement
-- inserted or deleted, per consumer.
CREATE FUNCTION count_consumer_marks() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO consumer_mark_counts AS c (consumer, marks)
    SELECT consumer, count(*) FROM changed GROUP BY consumer
    ON CONFLICT (consumer) DO UPDATE SET marks = c.marks + EXCLUDED.marks;
  ELSE
    UPDATE consumer_mark_counts c SET marks = greatest(c.marks - d.marks, 0)
    FROM (SELECT consumer, count(*) AS marks FROM changed GROUP BY consumer) d
    WHERE c.consumer = d.consumer;
  END IF;
  RETURN NULL;
END
$$;

CREATE TRIGGER consumer_processed_counted_on_insert
  AFTER INSERT ON consumer_processed
  REFERENCING NEW TABLE AS changed
  FOR EACH STATEMENT EXECUTE FUNCTION count_consumer_marks();

CREATE TRIGGER consumer_processed_counted_on_delete
  AFTER DELETE ON consumer_processed
  REFERENCING OLD TABLE AS changed
  FOR EACH STATEMENT EXECUTE FUNCTION count_consumer_marks();
