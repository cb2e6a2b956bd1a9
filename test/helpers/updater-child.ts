// Runs one updater operation in its own process, for the crash tests (which kill it with
// UPSWARM_CRASH_AFTER_STEP=N, or from outside at a random moment). Usage:
// node --import tsx updater-child.ts <op> <dir> <repo> [rev]
// With UPSWARM_CHILD_READY=1 it writes "ready" to stderr just before the operation starts.
// Prints {"steps": {count, labels}, "ms", "result": …} when it finishes (labels with UPSWARM_TRACE_STEPS=1).
import { recover, rollback, update } from '../../actors/updater/index.ts'
import { stepsTaken } from '../../actors/updater/session.ts'
import { DirectorySource, RecordingAlerts } from './dir-source.ts'

const [op, dir, repo, rev] = process.argv.slice(2)
if (!op || !dir || !repo) throw new Error('usage: updater-child.ts <update|rollback|recover> <dir> <repo> [rev]')
const source = new DirectorySource(repo)
if (process.env.UPSWARM_CHILD_READY === '1') process.stderr.write('ready\n')
const started = performance.now()
let result: unknown
if (op === 'update') result = await update(dir, { source, alerts: new RecordingAlerts(), ...(rev ? { rev: Number(rev) } : {}) })
else if (op === 'rollback') result = await rollback(dir, { rev: Number(rev), source })
else result = await recover(dir)
process.stdout.write(JSON.stringify({ steps: stepsTaken(), ms: performance.now() - started, result }) + '\n')
