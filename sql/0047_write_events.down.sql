-- Back to the writer's four statements a batch (the code before 0047 needs no function).
DROP FUNCTION write_events(json, json);
