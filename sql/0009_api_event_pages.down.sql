-- Rollback of 0009: the API polls with a plain statement again.
DROP FUNCTION api_event_pages(bigint[], bigint[], integer[], double precision);
