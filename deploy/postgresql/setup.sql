-- Roles and database of the gateway; idempotent, run as the superuser:
--   psql -v ON_ERROR_STOP=1 -v app_password=... -f deploy/postgresql/setup.sql
-- The password is only set when the role is created or has none, so a rerun
-- keeps the SCRAM secret (and the PgBouncer userlist copied from it) stable.

SELECT set_config('setup.app_password', :'app_password', false);

DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'telegram_gateway') THEN
    EXECUTE format('CREATE ROLE telegram_gateway LOGIN CREATEDB PASSWORD %L',
                   current_setting('setup.app_password'));
  ELSE
    -- CREATEDB: each test suite creates and drops its own database.
    ALTER ROLE telegram_gateway LOGIN CREATEDB;
    IF (SELECT rolpassword IS NULL FROM pg_authid WHERE rolname = 'telegram_gateway') THEN
      EXECUTE format('ALTER ROLE telegram_gateway PASSWORD %L',
                     current_setting('setup.app_password'));
    END IF;
  END IF;
END
$$;

SELECT 'CREATE DATABASE telegram_gateway OWNER telegram_gateway'
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'telegram_gateway')
\gexec

ALTER DATABASE telegram_gateway OWNER TO telegram_gateway;

-- Migration 0001 reads shared_preload_libraries to tell whether TimescaleDB
-- is preloaded (CREATE EXTENSION fails when it is only installed); PostgreSQL
-- shows that setting only to superusers and pg_read_all_settings.
GRANT pg_read_all_settings TO telegram_gateway;
