/**
 * deploy/compose/: the data and monitoring layers as Docker Compose files
 * (Docker does not run here, so they are parsed, not started). Their ports
 * and volumes must be the native configuration's: the Redis, PgBouncer and
 * RabbitMQ files they mount, the scrape targets of prometheus.yml, the Grafana
 * data sources, the exporters' defaults, and the whole-stack scripts' ports.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Fs from "node:fs/promises"
import * as Path from "node:path"
import { parse } from "yaml"
import { deployPath } from "./Tools.ts"

interface Service {
  readonly image: string
  readonly network_mode?: string
  readonly restart?: string
  readonly command?: string | ReadonlyArray<string>
  readonly environment?: Record<string, string>
  readonly volumes?: ReadonlyArray<string>
  readonly healthcheck?: { readonly test: ReadonlyArray<string> }
}
interface ComposeFile {
  readonly services: Record<string, Service>
  readonly volumes?: Record<string, unknown>
}

const composeDir = deployPath("compose")
const read = (path: string) => Effect.promise(() => Fs.readFile(path, "utf8"))
const readCompose = (name: string) => read(Path.join(composeDir, name)).pipe(Effect.map((text) => parse(text) as ComposeFile))

/** `key value` (Redis) or `key = value` (PgBouncer, RabbitMQ) lines of a native config file. */
const setting = (text: string, key: string): string | undefined => {
  const line = text.split("\n").find((candidate) => new RegExp(`^${key.replaceAll(".", "\\.")}(\\s*=\\s*|\\s+)`).test(candidate))
  return line?.replace(new RegExp(`^${key.replaceAll(".", "\\.")}(\\s*=\\s*|\\s+)`), "").trim()
}

const mounts = (service: Service) =>
  (service.volumes ?? []).map((entry) => {
    const [source, target] = entry.split(":")
    return { source: source!, target: target! }
  })

/** The native config file a service mounts from deploy/, read. */
const mounted = (service: Service, file: string) => {
  const mount = mounts(service).find((entry) => entry.source === file)
  assert.isDefined(mount, `${file} is not mounted`)
  return read(Path.resolve(composeDir, file)).pipe(Effect.map((text) => ({ text, target: mount!.target })))
}

const words = (service: Service) => [
  ...(typeof service.command === "string" ? [service.command] : service.command ?? []),
  ...(service.healthcheck?.test ?? []),
  ...Object.values(service.environment ?? {})
].join(" ")

/** Ports a service names for itself: 127.0.0.1:N, `-p N`, `port=N`, a listener check. */
const portsNamed = (service: Service): Set<number> =>
  new Set(
    [...words(service).matchAll(/127\.0\.0\.1:(\d+)|-p (\d+)|port=(\d+)|check_port_listener (\d+)|HTTP_PORT (\d+)/g)]
      .map((match) => Number(match.slice(1).find((group) => group !== undefined)))
  )
const healthPort = (service: Service) => {
  const match = /-p,? (\d+)|check_port_listener,? (\d+)|127\.0\.0\.1:(\d+)/.exec((service.healthcheck?.test ?? []).join(" "))
  return Number(match?.slice(1).find((group) => group !== undefined))
}

describe("Docker Compose files", () => {
  it.effect("pin their images, use the host's network, restart, and mount only files that exist", () =>
    Effect.gen(function*() {
      for (const name of ["docker-compose.data.yml", "docker-compose.monitoring.yml"]) {
        const compose = yield* readCompose(name)
        const declared = new Set(Object.keys(compose.volumes ?? {}))
        const used = new Set<string>()
        for (const [serviceName, service] of Object.entries(compose.services)) {
          assert.match(service.image, /:[\w.-]+$/, `${serviceName}: image tag`)
          assert.notMatch(service.image, /:latest$/, serviceName)
          assert.strictEqual(service.network_mode, "host", `${serviceName}: the native addresses hold only on the host's network`)
          assert.strictEqual(service.restart, "unless-stopped", serviceName)
          for (const { source } of mounts(service)) {
            if (source.startsWith(".")) {
              const exists = yield* Effect.promise(() => Fs.access(Path.resolve(composeDir, source)).then(() => true, () => false))
              assert.isTrue(exists, `${name} ${serviceName}: ${source} does not exist`)
            } else if (!source.startsWith("/")) {
              assert.isTrue(declared.has(source), `${name} ${serviceName}: volume ${source} is not declared`)
              used.add(source)
            }
          }
        }
        assert.deepStrictEqual([...declared].sort(), [...used].sort(), `${name}: declared volumes are used`)
      }
    }))

  it.effect("Redis master, replica and Sentinel: the native files, their ports and data directories", () =>
    Effect.gen(function*() {
      const { services } = yield* readCompose("docker-compose.data.yml")
      for (const [service, file] of [["redis-master", "master"], ["redis-replica", "replica"], ["redis-sentinel", "sentinel"]] as const) {
        const config = yield* mounted(services[service]!, `../redis/${file}.conf`)
        assert.strictEqual(healthPort(services[service]!), Number(setting(config.text, "port")), service)
        const data = mounts(services[service]!).find((mount) => !mount.source.startsWith("."))
        assert.strictEqual(data?.target, setting(config.text, "dir"), `${service}: the volume holds the config's dir`)
      }
      const replica = yield* mounted(services["redis-replica"]!, "../redis/replica.conf")
      const master = yield* mounted(services["redis-master"]!, "../redis/master.conf")
      assert.strictEqual(setting(replica.text, "replicaof"), `127.0.0.1 ${setting(master.text, "port")}`)
    }))

  it.effect("PostgreSQL and PgBouncer: the ports of pgbouncer.ini, its runtime directory and userlist", () =>
    Effect.gen(function*() {
      const { services } = yield* readCompose("docker-compose.data.yml")
      const ini = yield* mounted(services.pgbouncer!, "../pgbouncer/pgbouncer.ini")
      assert.strictEqual(healthPort(services.pgbouncer!), Number(setting(ini.text, "listen_port")))
      const postgresPort = Number(/port=(\d+)/.exec(setting(ini.text, "\\*") ?? "")?.[1])
      assert.strictEqual(postgresPort, 5432)
      assert.isTrue(portsNamed(services.timescaledb!).has(postgresPort), "the database listens where PgBouncer sends")
      assert.strictEqual(healthPort(services.timescaledb!), postgresPort)
      const runDir = Path.dirname(setting(ini.text, "pidfile")!)
      const targets = mounts(services.pgbouncer!).map((mount) => mount.target)
      assert.include(targets, runDir)
      assert.include(targets, setting(ini.text, "auth_file"))
      assert.strictEqual(Path.dirname(setting(ini.text, "auth_file")!), runDir)
      const init = yield* read(Path.join(composeDir, "postgres-init.sh"))
      for (const file of ["tuning.conf", "setup.sql", "roles.sql"]) {
        assert.include(init, `/etc/telegram-gateway/${file}`)
        assert.include(mounts(services.timescaledb!).map((mount) => mount.target), `/etc/telegram-gateway/${file}`)
      }
    }))

  it.effect("every Prometheus target and Grafana data source is served by a container, RabbitMQ's plugin or the native gateway", () =>
    Effect.gen(function*() {
      const data = yield* readCompose("docker-compose.data.yml")
      const monitoring = yield* readCompose("docker-compose.monitoring.yml")
      const rabbit = yield* mounted(data.services.rabbitmq!, "../rabbitmq/rabbitmq.conf")
      const amqpPort = Number(setting(rabbit.text, "listeners.tcp.local")!.split(":")[1])
      assert.strictEqual(healthPort(data.services.rabbitmq!), amqpPort)
      yield* mounted(data.services.rabbitmq!, "../rabbitmq/enabled_plugins")
      const served = new Set<number>([Number(setting(rabbit.text, "prometheus.tcp.port")), 4007, 4010])
      for (const service of [...Object.values(data.services), ...Object.values(monitoring.services)]) {
        for (const port of portsNamed(service)) served.add(port)
      }
      const prometheusYml = yield* mounted(monitoring.services.prometheus!, "../prometheus/prometheus.yml")
      const uncommented = prometheusYml.text.split("\n").filter((line) => !line.trim().startsWith("#")).join("\n")
      const targets = [...uncommented.matchAll(/"127\.0\.0\.1:(\d+)"/g)].map((match) => Number(match[1]))
      assert.isAtLeast(targets.length, 8)
      for (const port of targets) assert.isTrue(served.has(port), `scrape target 127.0.0.1:${port} served by nothing`)
      yield* mounted(monitoring.services.prometheus!, "../prometheus/telegram-alerts.yml")
      const sources = yield* read(deployPath("grafana", "provisioning", "datasources", "telegram.yml"))
      for (const match of sources.matchAll(/url: (?:http:\/\/)?127\.0\.0\.1:(\d+)/g)) {
        assert.isTrue(served.has(Number(match[1])), `data source port ${match[1]}`)
      }
      const dashboards = yield* read(deployPath("grafana", "provisioning", "dashboards", "telegram.yml"))
      const path = /path: (\S+)/.exec(dashboards)![1]
      assert.include(mounts(monitoring.services.grafana!).map((mount) => mount.target), path)
    }))

  it.effect("the exporters run with the arguments of their native defaults files", () =>
    Effect.gen(function*() {
      const { services } = yield* readCompose("docker-compose.monitoring.yml")
      const args = (text: string) => new Set(/ARGS='([^']*)'/.exec(text)![1]!.split(" "))
      const redis = args(yield* read(deployPath("exporters", "prometheus-redis-exporter.default")))
      assert.deepStrictEqual(new Set(services["redis-exporter"]!.command as ReadonlyArray<string>), redis)
      const postgres = args(yield* read(deployPath("exporters", "prometheus-postgres-exporter.default")))
      const command = services["postgres-exporter"]!.command as ReadonlyArray<string>
      for (const flag of postgres) {
        const [name, value] = flag.split("=")
        const mine = command.find((candidate) => candidate.startsWith(`${name}=`))
        assert.isDefined(mine, name)
        // The same address; the query file under its basename, mounted from deploy/exporters/.
        assert.strictEqual(Path.basename(mine!.split("=")[1]!), Path.basename(value!))
      }
      yield* mounted(services["postgres-exporter"]!, "../exporters/postgres-exporter-queries.yml")
    }))

  it.effect("the whole-stack scripts use the same ports", () =>
    Effect.gen(function*() {
      const script = yield* read(deployPath("scripts", "stack-services.sh"))
      const defaults = Object.fromEntries(
        [...script.matchAll(/: "\$\{STACK_(\w+)_PORT:=(\d+)\}"/g)].map((match) => [match[1]!, Number(match[2])])
      )
      const data = yield* readCompose("docker-compose.data.yml")
      const monitoring = yield* readCompose("docker-compose.monitoring.yml")
      assert.strictEqual(defaults.PG, healthPort(data.services.timescaledb!))
      assert.strictEqual(defaults.PGBOUNCER, healthPort(data.services.pgbouncer!))
      assert.strictEqual(defaults.REDIS, healthPort(data.services["redis-master"]!))
      assert.strictEqual(defaults.REDIS_REPLICA, healthPort(data.services["redis-replica"]!))
      assert.strictEqual(defaults.SENTINEL, healthPort(data.services["redis-sentinel"]!))
      assert.strictEqual(defaults.RABBITMQ, healthPort(data.services.rabbitmq!))
      for (const [key, service] of [["POSTGRES_EXPORTER", "postgres-exporter"], ["REDIS_EXPORTER", "redis-exporter"], ["NODE_EXPORTER", "node-exporter"]] as const) {
        assert.isTrue(portsNamed(monitoring.services[service]!).has(defaults[key]!), service)
      }
    }))
})
