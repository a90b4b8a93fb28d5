DROP FUNCTION IF EXISTS api_event_pages_json(bigint[], bigint[], integer[], double precision);
