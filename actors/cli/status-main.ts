// Entry of dist/status.cjs (issue 13 item 1): `status DIR --offline [--json]`, the command a user
// and their scripts run most, from a build of its own. bin/upswarm.cjs runs it for a `status …
// --offline` command line; the product's packages it may need on rarer paths (zod for a malformed
// config, the NATS client never) come from node_modules instead of the bundle, so that every start
// reads and compiles 0.3 MB instead of the whole product's 1.4 MB (scripts/build.mjs,
// docs/decisions.md "One CommonJS bundle with a code cache"). A command line the dispatch table
// does not take goes to the full build, which parses and reports as always.
import { mark } from '../../infra/timings.ts'
import { fastStatus } from './dispatch.ts'
import { runFastStatus } from './status.ts'

declare global {
  /** Set by bin/upswarm.cjs: runs the full build (dist/upswarm.cjs) on the same command line. */
  var __upswarmFull: (() => void) | undefined
}

mark('entry')

const fast = fastStatus(process.argv.slice(2))
if (fast) void runFastStatus(fast)
else if (globalThis.__upswarmFull) globalThis.__upswarmFull()
else throw new Error('dist/status.cjs runs from bin/upswarm.cjs, which hands it the full build for other command lines')
