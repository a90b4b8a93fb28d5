/**
 * The least-privilege roles for database tests: runs the real
 * deploy/postgresql/roles.sql with psql as the superuser (idempotent, so
 * suites running it at once are fine), and connects as a given role.
 */
import { PgClient } from "@effect/sql-pg"
import { Effect, Redacted } from "effect"
import { Reactivity } from "effect/reactivity"
import { execFile } from "node:child_process"
import { fileURLToPath } from "node:url"
import type { TestDatabase } from "../support/Database.ts"

const adminUrl = process.env.TEST_DATABASE_ADMIN_URL ?? "postgres://postgres@127.0.0.1:5432/postgres"
const postgresAddress = process.env.TEST_POSTGRES_ADDRESS ?? "127.0.0.1:5432"
const rolesScript = fileURLToPath(new URL("../../deploy/postgresql/roles.sql", import.meta.url))

export const applicationRole = "telegram_gateway_app"

export const ensureRoles = Effect.callback<void, Error>((resume) => {
  execFile(
    "psql",
    [adminUrl, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-v", "app_password=telegram_gateway", "-f", rolesScript],
    (error, _stdout, stderr) => resume(error === null ? Effect.void : Effect.fail(new Error(`roles.sql: ${stderr}`)))
  )
})

/** A scoped connection to the test database as `role`, straight to PostgreSQL (trust auth here). */
export const connectAs = (database: TestDatabase, role: string) =>
  PgClient.makeClient({
    url: Redacted.make(`postgres://${role}:telegram_gateway@${postgresAddress}/${database.name}`),
    prepare: false
  }).pipe(Effect.provide(Reactivity.layer))
