#!/usr/bin/env node
// Builds the product: the CLI and everything it imports, as plain JavaScript in dist/ (issue 13).
// `npm ci` runs it (prepare), and so do `npm start`, `npm test` (vitest's global setup) and
// `npm run bench`, so that nothing spawns an old build. tsx stays a development tool.
//
// esbuild bundles our TypeScript with the pure-JavaScript packages the CLI starts with into ONE
// CommonJS file, dist/upswarm.cjs. Every module the CLI imports dynamically (each command's code,
// zod, xstate, the NATS client) stays lazy inside it: its top level runs on first import only,
// so a command evaluates only what it uses. One script, rather than ESM chunks, because Node 20
// can cache only a script's compiled code: bin/upswarm.cjs compiles it with V8's code cache
// (dist/upswarm.cjs.<command>.cache), which takes most of the parse and compile time off every
// start (docs/decisions.md, "One CommonJS bundle with a code cache"). Packages with native addons
// or files of their own stay in node_modules. A second, small script, dist/status.cjs, holds
// `status --offline` alone (actors/cli/status-main.ts): the command run most reads a sixth of it.
//
// First it compiles the file-status statechart into the table `status` looks statuses up in
// (scripts/file-status-table.ts → machines/generated/file-status-table.ts, committed), and it
// writes esbuild's metafile (dist/meta.json: which output bytes come from which module) for the
// tests that check what a command runs.
import { build } from 'esbuild'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
export const DIST = join(ROOT, 'dist')
export const ENTRY = join(DIST, 'upswarm.cjs')
/** `status DIR --offline`'s own build (actors/cli/status-main.ts; bin/upswarm.cjs picks it). */
export const STATUS_ENTRY = join(DIST, 'status.cjs')

/** Bundled into dist/: pure JavaScript, no native addon, no file read at run time. */
const BUNDLED = new Set(['commander', 'zod', 'xstate', 'ignore', '@nats-io/nats-core', '@nats-io/transport-node',
  '@nats-io/jetstream', '@nats-io/kv', '@nats-io/obj', '@nats-io/services', '@nats-io/nkeys', '@nats-io/nuid',
  // The tree nodes' and packs' encoding, which `status` reads: bundled, they come with the code
  // cache instead of being resolved and compiled on every start (issue 13 item 1). The swarm's
  // packages that stay outside load their own copy; both are stateless.
  'b4a', 'compact-encoding'])

/**
 * zod's `locales` namespace holds the error messages of 48 languages (260 KB of the bundle, a
 * sixth of what every start reads); the product speaks English, so only `en` (which zod itself
 * configures at load) is bundled. `z.locales.xx` is undefined in the build.
 */
const zodEnglishOnly = {
  name: 'zod-english-only',
  setup(b) {
    b.onLoad({ filter: /[\\/]zod[\\/]v4[\\/]locales[\\/]index\.js$/ }, (args) => ({
      contents: 'export { default as en } from "./en.js";\n',
      resolveDir: dirname(args.path),
      loader: 'js',
    }))
  },
}

const packageOf = (spec) => spec.split('/').slice(0, spec.startsWith('@') ? 2 : 1).join('/')

/** Leaves every package outside the bundle but those of `bundled`. */
const externalPackagesBut = (bundled) => ({
  name: 'external-packages',
  setup(b) {
    b.onResolve({ filter: /^[^./]/ }, (args) => (bundled.has(packageOf(args.path)) ? undefined : { path: args.path, external: true }))
  },
})

/**
 * The status build carries only the packages `status --offline` runs on every start. What it
 * reaches on rare paths only (zod for a malformed config) loads from node_modules, where each of
 * them also has a CommonJS build.
 */
const STATUS_BUNDLED = new Set(['ignore', 'b4a', 'compact-encoding'])

/**
 * `import.meta.url` has no meaning in CommonJS: the bundle defines it as its own file's URL
 * (infra/project-root.ts finds package.json above it).
 */
const META_URL_BANNER = "const __upswarmMetaUrl = require('node:url').pathToFileURL(__filename).href;" +
  // See routeDynamicImports.
  " const __uimp = (s) => (globalThis.__upswarmImport ?? ((x) => import(x)))(s);"

/**
 * The bundle's import() of what stays outside it (node: modules, ES-only packages such as
 * @statelyai/inspect) goes through `__uimp`, which bin/upswarm.cjs points at its own import():
 * a script compiled with vm.Script has no module loader of its own for import() (node 20 offers
 * only an experimental one, with a warning on stderr). The rename keeps the length (7
 * characters), so the source map still fits; the count must match the metafile's.
 */
async function routeDynamicImports(metafile, entry) {
  const text = await readFile(entry, 'utf8')
  const routed = text.replace(/\bimport\("/g, '__uimp("')
  const found = (text.match(/\bimport\("/g) ?? []).length
  const expected = metafile.outputs[relative(ROOT, entry)].imports.filter((i) => i.kind === 'dynamic-import' && i.external).length
  if (found !== expected) throw new Error(`build: ${found} import("…") in ${entry}, but the metafile lists ${expected} dynamic imports left outside the bundle`)
  await writeFile(entry, asciiOnly(routed, entry))
}

/**
 * The bundle in ASCII (issue 13 item 1): bin/upswarm.cjs reads it as latin1 and V8 keeps it as a
 * one-byte string. One character beyond ASCII (esbuild leaves some, in regular expressions) made
 * the whole 3 MB source a two-byte string, decoded from UTF-8 on every start. Each is written as
 * its UTF-16 escape, which means the same character in a string, a template or a regular expression.
 */
function asciiOnly(text, entry) {
  const out = text.replace(/[^\x00-\x7f]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`)
  if (!/^[\x00-\x7f]*$/.test(out)) throw new Error(`build: ${entry} is not ASCII after escaping`)
  return out
}

export const FILE_STATUS_TABLE = join(ROOT, 'machines', 'generated', 'file-status-table.ts')

/** Regenerates the file-status table from the statechart; the generator is TypeScript, so esbuild bundles it first. */
export async function generateFileStatusTable() {
  const tmp = await mkdtemp(join(tmpdir(), 'upswarm-gen-'))
  try {
    const out = join(tmp, 'file-status-table.mjs')
    await build({ absWorkingDir: ROOT, entryPoints: ['scripts/file-status-table.ts'], outfile: out, bundle: true, format: 'esm', platform: 'node', target: 'node20', logLevel: 'warning' })
    const { writeTable } = await import(pathToFileURL(out).href)
    if (await writeTable(FILE_STATUS_TABLE)) process.stderr.write(`build: ${relative(ROOT, FILE_STATUS_TABLE)} regenerated from the file-status statechart; commit it\n`)
  } finally {
    await rm(tmp, { recursive: true, force: true })
  }
}

/**
 * `keepGenerated`: build from the committed table as it is. The test suite builds so (vitest's
 * global setup), so that a table older than the statechart fails its test instead of being
 * quietly rewritten in the working tree.
 */
export async function buildDist({ keepGenerated = !!process.env.UPSWARM_KEEP_GENERATED } = {}) {
  if (!keepGenerated) await generateFileStatusTable()
  await rm(DIST, { recursive: true, force: true })
  const [full, status] = await Promise.all([
    bundle('actors/cli/main.ts', ENTRY, [externalPackagesBut(BUNDLED), zodEnglishOnly]),
    bundle('actors/cli/status-main.ts', STATUS_ENTRY, [externalPackagesBut(STATUS_BUNDLED)]),
  ])
  // One metafile of both builds: which output bytes come from which module.
  await writeFile(join(DIST, 'meta.json'), JSON.stringify({ inputs: { ...full.inputs, ...status.inputs }, outputs: { ...full.outputs, ...status.outputs } }))
}

/** One CommonJS build of `entryPoint` into `outfile`; returns its metafile. */
async function bundle(entryPoint, outfile, plugins) {
  const { metafile } = await build({
    absWorkingDir: ROOT,
    entryPoints: [entryPoint],
    outfile,
    bundle: true,
    format: 'cjs',
    platform: 'node',
    target: 'node20',
    // Less to read at every start; UPSWARM_DEBUG=1 maps stack traces back to the sources
    // (UPSWARM_NO_MINIFY=1 keeps the names, for reading CPU profiles).
    minify: !process.env.UPSWARM_NO_MINIFY,
    sourcemap: 'linked',
    define: { 'import.meta.url': '__upswarmMetaUrl' },
    banner: { js: META_URL_BANNER },
    plugins,
    logLevel: 'warning',
    metafile: true,
  })
  await routeDynamicImports(metafile, outfile)
  return metafile
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await buildDist()
