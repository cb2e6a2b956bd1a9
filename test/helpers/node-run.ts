// Runs `node ARGS…` (node flags such as a loader hook first, then a script and its arguments) and
// resolves with its exit code and output; a process that fails to run resolves with code 1.
import { execFile } from 'node:child_process'

export interface NodeRun { code: number; stdout: string; stderr: string }

export function runNode(args: string[], env: NodeJS.ProcessEnv, timeoutMs = 30_000): Promise<NodeRun> {
  return new Promise((resolve) => {
    execFile(process.execPath, args, { env, timeout: timeoutMs }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr })
    })
  })
}
