#!/usr/bin/env node
'use strict'
// Entry of the `upswarm` CLI: the build in dist/ (one CommonJS bundle; `npm ci` makes it, and
// `npm start`, `npm test` and `npm run bench` make it again first). `npm run build` after an edit.
//
// Start-up (issues 13 and 15): Node 20 caches compiled code for no ES module, so the bundle is a
// script, compiled here with V8's code cache: one per build and command
// (dist/<build>.<command>.cache, so each deserializes only the code it runs), written at exit by a
// run that found none (or one V8 refused: another node, other flags); `npm run build` deletes them
// with the old bundle.
// UPSWARM_CODE_CACHE=0 turns it off; a dist/ that cannot be written simply runs without it.
// This file is CommonJS: an ES module entry starts node's ES module loader, and each `node:`
// import through it builds a module of every export (8 ms of a 150 ms `status` here).
// bin/upswarm.mjs, the entry of earlier releases, runs this file.
const { existsSync, readFileSync, renameSync, writeFileSync } = require('node:fs')
const { createRequire } = require('node:module')
const { dirname, join } = require('node:path')
const vm = require('node:vm')

const args = process.argv.slice(2)
const bundle = join(__dirname, '..', 'dist', 'upswarm.cjs')
// `status … --offline`, the command run most, has a build of its own (a sixth of the whole:
// actors/cli/status-main.ts), which hands any command line its dispatch table does not take to
// the whole build through globalThis.__upswarmFull.
const statusBundle = join(__dirname, '..', 'dist', 'status.cjs')

/** Issue 13 item 1: `upswarm --version` alone is answered from package.json, loading nothing of the build. */
function printVersion() {
  process.stdout.write(`${JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf8')).version}\n`)
}

function readOrUndefined(file, encoding) {
  try {
    return readFileSync(file, encoding)
  } catch (err) {
    if (err.code === 'ENOENT') return undefined
    throw err
  }
}

/** A command's own cache of build `file` (each holds the code its command compiled): dist/<build>.<command>.cache. */
function cacheFileOf(file, argv) {
  const word = argv.find((a) => !a.startsWith('-')) ?? 'help'
  return `${file}.${/^[a-z][a-z0-9-]{0,30}$/.test(word) ? word : 'other'}.cache`
}

function runWithCodeCache(bundle, source) {
  const cacheFile = cacheFileOf(bundle, args)
  const cachedData = readOrUndefined(cacheFile)
  // The module wrapper of CommonJS, by hand: the bundle gets its own require, module and paths.
  const script = new vm.Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, {
    filename: bundle,
    ...(cachedData ? { cachedData } : {}),
  })
  if (process.env.UPSWARM_TIMINGS) process.stderr.write(`upswarm timings: code cache ${!cachedData ? 'none' : script.cachedDataRejected ? 'rejected' : 'used'}\n`)
  if (!cachedData || script.cachedDataRejected) {
    // At exit: by then V8 has compiled the functions this command ran (it compiles lazily).
    process.once('exit', () => {
      try {
        const tmp = `${cacheFile}.${process.pid}.tmp`
        writeFileSync(tmp, script.createCachedData())
        renameSync(tmp, cacheFile)
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

/** Runs one of the builds, `file`: through its code cache, or as a plain require() for a debugging session. */
function run(file) {
  // The build is ASCII (scripts/build.mjs): read as latin1, it is a one-byte string with no decoding.
  const source = readOrUndefined(file, 'latin1')
  if (source === undefined) {
    process.stderr.write(`upswarm: no build at ${file}: run \`npm run build\` (npm ci runs it) [UPSWARM_E_CONFIG]\n`)
    process.exitCode = 2
  } else if (process.env.UPSWARM_DEBUG || process.env.UPSWARM_CODE_CACHE === '0') {
    // The build is minified: with UPSWARM_DEBUG, stack traces point into the TypeScript sources.
    if (process.env.UPSWARM_DEBUG) process.setSourceMapsEnabled(true)
    require(file)
  } else {
    runWithCodeCache(file, source)
  }
}

/**
 * Issue 15 item 4: `update DIR` of a copy whose sharing daemon has its control socket open
 * (DIR/.upswarm/daemon.sock) only hands the run over: the light build does that.
 */
function servedByDaemon() {
  return args.slice(1).some((a) => !a.startsWith('-') && existsSync(join(a, '.upswarm', 'daemon.sock')))
}

if (args.length === 1 && (args[0] === '--version' || args[0] === '-V')) {
  printVersion()
} else if ((args[0] === 'status' && args.includes('--offline')) || (args[0] === 'update' && servedByDaemon())) {
  globalThis.__upswarmFull = () => run(bundle)
  run(statusBundle)
} else {
  run(bundle)
}
