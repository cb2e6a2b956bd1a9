#!/usr/bin/env node
// `npm run simulate`: bundles the swarm simulator (bench/simulate/main.ts, with the daemon's
// scheduler modules it imports) with esbuild and runs it. Bundled rather than run under tsx:
// tsx keeps function names by wrapping every closure the scheduler makes, which cost a fifth of
// the simulator's time at N = 10 000. The bundle goes to bench/results/tmp/ (git-ignored),
// inside the project so that its root and packages resolve as from the sources. package.json runs
// it with a 12 GiB heap: N = 10 000 in 256 KiB pieces holds more than node's default 4 GiB.
import { build } from 'esbuild'
import { join, dirname } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const out = join(ROOT, 'bench', 'results', 'tmp', 'simulate.mjs')
await build({
  entryPoints: [join(ROOT, 'bench', 'simulate', 'main.ts')],
  outfile: out,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  packages: 'external',
  logLevel: 'warning',
})
await import(pathToFileURL(out).href)
