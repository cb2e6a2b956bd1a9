#!/usr/bin/env node
// Entry of the `upswarm` CLI: the build in dist/ (one CommonJS bundle; `npm ci` makes it, and
// `npm start`, `npm test` and `npm run bench` make it again first). `npm run build` after an edit.
//
// Start-up (issues 13 and 15): Node 20 caches compiled code for no ES module, so the bundle is a
// script, compiled here with V8's code cache from dist/upswarm.cjs.cache. The cache is written at
// exit by a process that found none (or one V8 refused: another node, other flags) and by the
// first run of each command (its code compiles lazily, so each command adds its own functions);
// `npm run build` deletes it with the old bundle. UPSWARM_CODE_CACHE=0 turns it off; a dist/
// that cannot be written simply runs without it.
import { readFileSync, renameSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import vm from 'node:vm'

const args = process.argv.slice(2)
const bundle = fileURLToPath(new URL('../dist/upswarm.cjs', import.meta.url))

/** Issue 13 item 1: `upswarm --version` alone is answered from package.json, loading nothing of the build. */
function printVersion() {
  process.stdout.write(`${JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version}\n`)
}

function readOrUndefined(file, encoding) {
  try {
    return readFileSync(file, encoding)
  } catch (err) {
    if (err.code === 'ENOENT') return undefined
    throw err
  }
}

/** The commands a cache holds the code of, one per line beside it. */
const COMMANDS_FILE = `${bundle}.cache.commands`
const commandOf = (argv) => argv.find((a) => !a.startsWith('-')) ?? '(none)'

function runWithCodeCache(source) {
  const cacheFile = `${bundle}.cache`
  const cachedData = readOrUndefined(cacheFile)
  const covered = (readOrUndefined(COMMANDS_FILE, 'utf8') ?? '').split('\n').filter(Boolean)
  // The module wrapper of CommonJS, by hand: the bundle gets its own require, module and paths.
  const script = new vm.Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, {
    filename: bundle,
    ...(cachedData ? { cachedData } : {}),
  })
  const command = commandOf(args)
  if (process.env.UPSWARM_TIMINGS) process.stderr.write(`upswarm timings: code cache ${!cachedData ? 'none' : script.cachedDataRejected ? 'rejected' : 'used'}\n`)
  if (!cachedData || script.cachedDataRejected || !covered.includes(command)) {
    process.once('exit', () => {
      try {
        const tmp = `${cacheFile}.${process.pid}.tmp`
        writeFileSync(tmp, script.createCachedData())
        renameSync(tmp, cacheFile)
        const list = script.cachedDataRejected || !cachedData ? [command] : [...covered, command]
        writeFileSync(`${COMMANDS_FILE}.${process.pid}.tmp`, `${[...new Set(list)].join('\n')}\n`)
        renameSync(`${COMMANDS_FILE}.${process.pid}.tmp`, COMMANDS_FILE)
      } catch {
        // A read-only install: no cache, same behaviour.
      }
    })
  }
  const module = { exports: {} }
  script.runInThisContext()(module.exports, createRequire(bundle), module, bundle, dirname(bundle))
}

// The bundle's import() of node: modules and ES-only packages comes here (scripts/build.mjs,
// routeDynamicImports): a vm.Script has no import() of its own.
globalThis.__upswarmImport = (specifier) => import(specifier)

if (args.length === 1 && (args[0] === '--version' || args[0] === '-V')) {
  printVersion()
} else {
  const source = readOrUndefined(bundle, 'utf8')
  if (source === undefined) {
    process.stderr.write(`upswarm: no build at ${bundle}: run \`npm run build\` (npm ci runs it) [UPSWARM_E_CONFIG]\n`)
    process.exitCode = 2
  } else if (process.env.UPSWARM_DEBUG || process.env.UPSWARM_CODE_CACHE === '0') {
    // The build is minified: with UPSWARM_DEBUG, stack traces point into the TypeScript sources.
    if (process.env.UPSWARM_DEBUG) process.setSourceMapsEnabled(true)
    createRequire(import.meta.url)(bundle)
  } else {
    runWithCodeCache(source)
  }
}
