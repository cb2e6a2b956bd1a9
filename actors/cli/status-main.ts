// Entry of dist/status.cjs (issue 13 item 1): `status DIR --offline [--json]`, the command a user
// and their scripts run most, from a build of its own; and `update DIR` of a copy whose sharing
// daemon runs, which only hands the run to the daemon (issue 15 item 4). bin/upswarm.cjs runs it for a `status …
// --offline` command line; the product's packages it may need on rarer paths (zod for a malformed
// config, the NATS client never) come from node_modules instead of the bundle, so that every start
// reads and compiles 0.3 MB instead of the whole product's 1.4 MB (scripts/build.mjs,
// docs/decisions.md "One CommonJS bundle with a code cache"). A command line the dispatch table
// does not take goes to the full build, which parses and reports as always.
import { mark } from '../../infra/timings.ts'
import { fastStatus, fastUpdate } from './dispatch.ts'
import { reportError } from './output.ts'
import { runFastStatus } from './status.ts'
import { handToDaemon } from './update-report.ts'

declare global {
  /** Set by bin/upswarm.cjs: runs the full build (dist/upswarm.cjs) on the same command line. */
  var __upswarmFull: (() => void) | undefined
}

mark('entry')

function full(): void {
  if (globalThis.__upswarmFull) globalThis.__upswarmFull()
  else throw new Error('dist/status.cjs runs from bin/upswarm.cjs, which hands it the full build for other command lines')
}

/** Issue 15 item 4: `update DIR` of a copy a sharing daemon serves is the daemon's run; without one, the full build's. */
async function runFastUpdate(up: NonNullable<ReturnType<typeof fastUpdate>>): Promise<void> {
  const { dir, json, ...request } = up
  try {
    if (!await handToDaemon(dir, request, json)) full()
  } catch (err) {
    process.exitCode = reportError(err, json)
  }
}

const args = process.argv.slice(2)
const fast = fastStatus(args)
const up = fast ? undefined : fastUpdate(args)
if (fast) void runFastStatus(fast)
else if (up) void runFastUpdate(up)
else full()
