#!/usr/bin/env node
// Builds the product: the CLI and everything it imports, as plain JavaScript in dist/ (issue 13).
// `npm ci` runs it (prepare), and so do `npm start`, `npm test` (vitest's global setup) and
// `npm run bench`, so that nothing spawns an old build. tsx stays a development tool.
//
// esbuild bundles our TypeScript with the pure-JavaScript packages the CLI starts with, split at
// every dynamic import: each command loads its own chunks, and a chunk is one file to read
// instead of dozens (zod alone is 94 modules). Packages with native addons or files of their own
// stay in node_modules. docs/decisions.md has the figures behind this choice.
//
// First it compiles the file-status statechart into the table `status` looks statuses up in
// (scripts/file-status-table.ts → machines/generated/file-status-table.ts, committed), and it
// writes esbuild's metafile (dist/meta.json: which chunk holds which module) for the tests that
// check what a command loads.
import { build } from 'esbuild'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
export const DIST = join(ROOT, 'dist')
export const ENTRY = join(DIST, 'upswarm.js')

/** Bundled into dist/: pure JavaScript, no native addon, no file read at run time. */
const BUNDLED = new Set(['commander', 'zod', 'xstate', 'ignore', '@nats-io/nats-core', '@nats-io/transport-node',
  '@nats-io/jetstream', '@nats-io/kv', '@nats-io/obj', '@nats-io/services', '@nats-io/nkeys', '@nats-io/nuid'])

const packageOf = (spec) => spec.split('/').slice(0, spec.startsWith('@') ? 2 : 1).join('/')

const externalPackages = {
  name: 'external-packages',
  setup(b) {
    b.onResolve({ filter: /^[^./]/ }, (args) => (BUNDLED.has(packageOf(args.path)) ? undefined : { path: args.path, external: true }))
  },
}

// Bundled CommonJS packages (commander) require node's built-ins through esbuild's `require` shim,
// which needs a `require` in its chunk.
const REQUIRE_BANNER = "import { createRequire as __upswarmRequire } from 'node:module'; const require = __upswarmRequire(import.meta.url);"

/**
 * Issue 13 item 1: the banner costs each chunk a `createRequire` call at load (ESM chunks load
 * one by one: a short command loads ~20). esbuild adds it to every chunk; it stays only in the
 * chunks whose code says `require`. The line is blanked, not removed, so the source maps still fit.
 */
async function dropUnusedRequireBanners(metafile) {
  for (const out of Object.keys(metafile.outputs).filter((o) => o.endsWith('.js'))) {
    const file = join(ROOT, out)
    const text = await readFile(file, 'utf8')
    if (!text.startsWith(REQUIRE_BANNER)) continue
    const body = text.slice(REQUIRE_BANNER.length)
    if (!/\brequire\b/.test(body)) await writeFile(file, body)
  }
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
  const { metafile } = await build({
    absWorkingDir: ROOT,
    entryPoints: { upswarm: 'actors/cli/main.ts' },
    outdir: DIST,
    chunkNames: 'chunks/[name]-[hash]',
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    // Less to parse at every start; UPSWARM_DEBUG=1 maps stack traces back to the sources.
    minify: true,
    sourcemap: 'linked',
    banner: { js: REQUIRE_BANNER },
    plugins: [externalPackages],
    logLevel: 'warning',
    metafile: true,
  })
  await dropUnusedRequireBanners(metafile)
  await writeFile(join(DIST, 'meta.json'), JSON.stringify(metafile))
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await buildDist()
