// The CLI's entry (the build's dist/upswarm.cjs, which bin/upswarm.cjs runs): every command line
// but `--version` alone (bin/upswarm.cjs answers it from package.json) and `status … --offline`
// (dist/status.cjs, actors/cli/status-main.ts, whose dispatch table takes the simple ones and hands
// the rest back here) goes to actors/cli.ts, which parses and reports as always (issue 13 item 1,
// docs/decisions.md "Start-up within 1.5× of node").
import { mark } from '../../infra/timings.ts'

mark('entry')

void import('../cli.ts').then(({ runCli }) => runCli())
