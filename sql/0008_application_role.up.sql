-- 0008: what the application role may do. The owner role (the one running
-- migrations) owns every object; the application role, created by
-- deploy/postgresql/roles.sql, gets the DML it needs and nothing else: no
-- CREATE, ALTER, DROP or TRUNCATE. Default privileges extend that to what
-- later migrations create. Skipped when the role does not exist (a
-- development database where one role does everything).
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'telegram_gateway_app') THEN
    RAISE NOTICE 'role telegram_gateway_app does not exist: no grants (run deploy/postgresql/roles.sql)';
    RETURN;
  END IF;
  EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO telegram_gateway_app', current_database());
  REVOKE CREATE ON SCHEMA public FROM PUBLIC;
  GRANT USAGE ON SCHEMA public TO telegram_gateway_app;
  GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO telegram_gateway_app;
  GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO telegram_gateway_app;
  GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO telegram_gateway_app;
  -- The migration history is the owner's.
  REVOKE INSERT, UPDATE, DELETE ON schema_migrations FROM telegram_gateway_app;
  ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO telegram_gateway_app;
  ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO telegram_gateway_app;
  ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT EXECUTE ON FUNCTIONS TO telegram_gateway_app;
END
$$;

-- The writer calls it at start to create partitions ahead (DDL): it runs with
-- the owner's rights, on a fixed search_path so it cannot be hijacked.
ALTER FUNCTION ensure_message_partitions(integer) SECURITY DEFINER SET search_path = public, pg_temp;
