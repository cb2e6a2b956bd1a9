// The CLI's entry (the build's dist/upswarm.js, which bin/upswarm.cjs imports): a dispatch table
// of commands whose arguments are simple enough to run without the full command line — commander
// and the registration of every command, a third of a short command's start-up (issue 13 item 1,
// docs/decisions.md "Start-up within 1.5× of node"). Anything else, and any flag the table does not
// know (`--help` included), goes to actors/cli.ts, which parses and reports as always.
// (`--version` alone never gets here: bin/upswarm.cjs answers it.)

import { mark } from '../../infra/timings.ts'
import { fastStatus } from './dispatch.ts'

mark('entry')

async function main(): Promise<void> {
  const fast = fastStatus(process.argv.slice(2))
  if (fast) {
    await (await import('./status.ts')).runFastStatus(fast)
  } else {
    await (await import('../cli.ts')).runCli()
  }
}

void main()
