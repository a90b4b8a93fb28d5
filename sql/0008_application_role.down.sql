-- Rollback of 0008: the application role loses every grant in this database.
ALTER FUNCTION ensure_message_partitions(integer) SECURITY INVOKER RESET search_path;

DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'telegram_gateway_app') THEN
    RETURN;
  END IF;
  ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON TABLES FROM telegram_gateway_app;
  ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON SEQUENCES FROM telegram_gateway_app;
  ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON FUNCTIONS FROM telegram_gateway_app;
  REVOKE ALL ON ALL TABLES IN SCHEMA public FROM telegram_gateway_app;
  REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM telegram_gateway_app;
  REVOKE ALL ON ALL FUNCTIONS IN SCHEMA public FROM telegram_gateway_app;
  REVOKE ALL ON SCHEMA public FROM telegram_gateway_app;
  EXECUTE format('REVOKE ALL ON DATABASE %I FROM telegram_gateway_app', current_database());
END
$$;
