#!/usr/bin/env node
/**
 * Bundles the programs as they are deployed: each entry point with our code
 * and Effect's packages (`effect`, `@effect/*`) in one ES module, every other
 * package (GramJS with its patch, ioredis, amqplib, ws) and Node's
 * built-ins loaded from node_modules as before.
 *
 * Why: Node keeps the source text of every ES module it loads, and Effect's
 * modules are mostly documentation. Unbundled, 30 of the 51 MB the daemon
 * held live at 1,000 msg/s were source text and compiled code. Bundled
 * (comments dropped, unused modules left out), loading the daemon peaks at
 * 136 MB RSS instead of 168-180 MB and takes half the time, and its peak RSS
 * under load is 11-17 MB lower; CPU per event is the same within noise
 * (docs/benchmarks.md, "Thirteenth pass"). Names are kept readable (no
 * minification), so logs and stack traces still name our functions.
 *
 *   node deploy/scripts/bundle.mjs           dist/bin/telegram-gateway.js and
 *                                            dist/bin/telegram-gateway-api.js,
 *                                            with source maps (`npm run build`)
 *   node deploy/scripts/bundle.mjs --bench   the bench's gateway process and
 *                                            API server, over tsc's output in
 *                                            dist-bench/ (`npm run bench:build`)
 *   --outdir DIR                             write there instead
 *
 * src/layers/Migrations.ts finds sql/ from the bundle's place, as from src/.
 */
import * as esbuild from "esbuild"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"

const root = Path.resolve(Path.dirname(fileURLToPath(import.meta.url)), "..", "..")
const args = process.argv.slice(2)
const bench = args.includes("--bench")
const outdirAt = args.indexOf("--outdir")

const preset = bench
  ? {
    outdir: Path.join(root, "dist-bench"),
    outbase: root,
    entryPoints: ["bench/pipeline/GatewayProcess.ts", "src/bin/telegram-gateway-api.ts"],
    sourcemap: false,
    // tsc's output for the other benches stays; these two files replace its.
    clean: false
  }
  : {
    outdir: Path.join(root, "dist"),
    outbase: Path.join(root, "src"),
    entryPoints: ["src/bin/telegram-gateway.ts", "src/bin/telegram-gateway-api.ts"],
    sourcemap: "linked",
    clean: true
  }
const outdir = outdirAt >= 0 ? Path.resolve(args[outdirAt + 1] ?? "") : preset.outdir

/** Effect's packages and our own modules are bundled; any other import is left to Node. */
const bundledPackage = /^(effect|@effect\/)/
const loadOthersFromNodeModules = {
  name: "load-others-from-node-modules",
  setup(build) {
    build.onResolve({ filter: /^[^./]/ }, (resolve) =>
      bundledPackage.test(resolve.path) ? undefined : { path: resolve.path, external: true })
  }
}

if (preset.clean) Fs.rmSync(outdir, { recursive: true, force: true })
const result = await esbuild.build({
  absWorkingDir: root,
  entryPoints: preset.entryPoints,
  outdir,
  outbase: preset.outbase,
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node24",
  sourcemap: preset.sourcemap,
  sourcesContent: false,
  plugins: [loadOthersFromNodeModules],
  logLevel: "warning",
  metafile: true
})
for (const [file, output] of Object.entries(result.metafile.outputs)) {
  if (file.endsWith(".js")) console.log(`bundle: ${Path.relative(root, Path.resolve(root, file))} (${(output.bytes / 1024).toFixed(0)} KiB)`)
}
