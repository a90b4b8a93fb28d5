-- Least-privilege roles of the gateway; idempotent, run as the superuser
-- after setup.sql (deploy/scripts/stack.sh runs both):
--   psql -v ON_ERROR_STOP=1 -v app_password=... -f deploy/postgresql/roles.sql
--
--   telegram_gateway      the owner: owns the database and every object in
--                         it, runs the migrations (database.migrationUrl,
--                         straight to PostgreSQL). Created by setup.sql.
--   telegram_gateway_app  the application: DML only (SELECT, INSERT, UPDATE,
--                         DELETE, sequences, functions), through PgBouncer
--                         (database.url). Its grants are made per database by
--                         migration 0008, so run this script before migrating.
--
-- The password is only set when the role is created or has none, so a rerun
-- keeps its SCRAM secret, and the PgBouncer userlist made from it, stable.

SELECT set_config('setup.app_password', :'app_password', false);

DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'telegram_gateway_app') THEN
    BEGIN
      EXECUTE format('CREATE ROLE telegram_gateway_app LOGIN PASSWORD %L', current_setting('setup.app_password'));
    EXCEPTION WHEN duplicate_object THEN
      NULL; -- created meanwhile by a concurrent run
    END;
  END IF;
  -- Whatever it was given before: it logs in, and may not create anything.
  ALTER ROLE telegram_gateway_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
  IF (SELECT rolpassword IS NULL FROM pg_authid WHERE rolname = 'telegram_gateway_app') THEN
    EXECUTE format('ALTER ROLE telegram_gateway_app PASSWORD %L', current_setting('setup.app_password'));
  END IF;
  -- Through PgBouncer, session SETs are lost: role settings are the way.
  -- A writer batch must not hang on a lock; the migrations' owner role has none.
  ALTER ROLE telegram_gateway_app SET lock_timeout = '5s';
  ALTER ROLE telegram_gateway_app SET idle_in_transaction_session_timeout = '60s';
END
$$;
