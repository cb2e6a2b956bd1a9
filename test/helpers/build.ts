// Tests spawn bin/upswarm.cjs, which runs the build in dist/: rebuild it first so that no test
// runs an old build after a source edit (also when vitest is run directly, not via `npm test`).
import { execFileSync } from 'node:child_process'
import { join } from 'node:path'
import { PROJECT_ROOT } from '../../infra/project-root.ts'

export function setup(): void {
  // The committed file-status table as it is: its test says when it is older than the statechart.
  execFileSync(process.execPath, [join(PROJECT_ROOT, 'scripts', 'build.mjs')], { stdio: 'inherit', env: { ...process.env, UPSWARM_KEEP_GENERATED: '1' } })
}
