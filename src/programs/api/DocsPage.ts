/**
 * `/docs`: the OpenAPI document rendered as one self-contained HTML page, so
 * it works offline and behind a firewall (no CDN, no script).
 */
import { Effect, Layer } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { OpenApi } from "effect/http-api"
import { GatewayApi } from "./Api.ts"

interface Operation {
  readonly summary?: string
  readonly description?: string
  readonly parameters?: ReadonlyArray<{ name: string; in: string; required?: boolean; description?: string; schema?: unknown }>
  readonly requestBody?: { content?: Record<string, { schema?: unknown }> }
  readonly responses?: Record<string, { description?: string; content?: Record<string, { schema?: unknown }> }>
}

const escape = (text: string) =>
  text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;")

const json = (value: unknown) => `<pre>${escape(JSON.stringify(value, null, 2))}</pre>`

const schemaOf = (content: Record<string, { schema?: unknown }> | undefined) =>
  content === undefined ? "" : Object.entries(content).map(([type, { schema }]) => `<p><code>${escape(type)}</code></p>${json(schema)}`).join("")

const operation = (method: string, path: string, op: Operation) => {
  const parameters = (op.parameters ?? []).map((p) =>
    `<tr><td><code>${escape(p.name)}</code></td><td>${escape(p.in)}</td><td>${p.required === true ? "yes" : "no"}</td>` +
    `<td>${escape(p.description ?? "")}</td><td><code>${escape(JSON.stringify(p.schema ?? {}))}</code></td></tr>`
  ).join("")
  const responses = Object.entries(op.responses ?? {}).map(([status, response]) =>
    `<h4>${escape(status)} ${escape(response.description ?? "")}</h4>${schemaOf(response.content)}`
  ).join("")
  return `<section><h3><span class="method">${method.toUpperCase()}</span> <code>${escape(path)}</code></h3>` +
    `<p>${escape(op.description ?? op.summary ?? "")}</p>` +
    (parameters === "" ? "" : `<table><tr><th>Parameter</th><th>In</th><th>Required</th><th>Description</th><th>Schema</th></tr>${parameters}</table>`) +
    (op.requestBody === undefined ? "" : `<h4>Request body</h4>${schemaOf(op.requestBody.content)}`) +
    `<details><summary>Responses</summary>${responses}</details></section>`
}

export const renderDocs = (): string => {
  const spec = OpenApi.fromApi(GatewayApi)
  const paths = spec.paths as unknown as Record<string, Record<string, Operation>>
  const operations = Object.entries(paths).flatMap(([path, methods]) =>
    Object.entries(methods).map(([method, op]) => operation(method, path, op))
  ).join("")
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escape(spec.info.title)}</title>
<style>body{font:15px/1.5 system-ui,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem}
pre{background:#f4f4f4;padding:.5rem;overflow:auto;font-size:12px}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:.2rem .5rem;text-align:left;vertical-align:top}
.method{background:#234;color:#fff;padding:0 .4rem;border-radius:3px}section{border-top:1px solid #ddd;margin-top:1.5rem}</style>
</head><body><h1>${escape(spec.info.title)} <small>v${escape(spec.info.version)}</small></h1>
<p>${escape(spec.info.description ?? "")}</p>
<p>Machine-readable: <a href="/openapi.json">/openapi.json</a>. Health: <code>/health/live</code>, <code>/health/ready</code>; metrics: <code>/metrics</code>.</p>
${operations}
<section><h2>Schemas</h2>${json(spec.components.schemas)}</section></body></html>`
}

/** Rendered once, when the server starts: the API does not change while it runs. */
export const layer = Layer.unwrap(Effect.sync(() => {
  const page = renderDocs()
  return HttpRouter.add("GET", "/docs", Effect.sync(() => HttpServerResponse.html(page)))
}))
