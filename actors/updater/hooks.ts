// Install hooks and the health check (issue 16 item 2, after Mender's state scripts and RAUC's
// mark-good): each is a shell command line run in the working copy's directory, told what the
// run does through environment variables. Its own process group, so that a health check past
// its time (the update-run machine leaves the state, which aborts the signal) is killed whole.
import { spawn } from 'node:child_process'
import { UpswarmError } from '../../infra/errors.ts'
import type { HookInput } from '../../machines/update-run.machine.ts'

/** What a failed command said last, in its error message. */
const TAIL_BYTES = 1024

export interface HookContext {
  dir: string
  product: string
  clientId: string
}

/** The environment a hook sees beside the process's own (docs/updater.md, "Install hooks"). */
export function hookEnv(ctx: HookContext, input: HookInput): Record<string, string> {
  return {
    UPSWARM_HOOK: input.hook,
    UPSWARM_RUN: input.run,
    UPSWARM_DIR: ctx.dir,
    UPSWARM_PRODUCT: ctx.product,
    UPSWARM_CLIENT_ID: ctx.clientId,
    UPSWARM_FROM_REV: String(input.target.from),
    UPSWARM_TO_REV: String(input.target.to),
  }
}

/** Runs the command to its end; rejects (UPSWARM_E_HOOK, or UPSWARM_E_HEALTH for the health check) unless it exits 0. */
export function runHook(ctx: HookContext, input: HookInput, signal: AbortSignal): Promise<void> {
  const code = input.hook === 'health' ? 'UPSWARM_E_HEALTH' : 'UPSWARM_E_HOOK'
  const what = `the ${input.hook === 'health' ? 'health check' : `${input.hook} hook`} of r${input.target.to} in ${ctx.dir} (${JSON.stringify(input.command)})`
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new UpswarmError(code, `${what} was not started: the run stopped`))
    const child = spawn('/bin/sh', ['-c', input.command], {
      cwd: ctx.dir, env: { ...process.env, ...hookEnv(ctx, input) }, stdio: ['ignore', 'pipe', 'pipe'], detached: true,
    })
    let tail = Buffer.alloc(0)
    const keep = (chunk: Buffer): void => {
      tail = Buffer.concat([tail, chunk])
      if (tail.length > TAIL_BYTES) tail = tail.subarray(tail.length - TAIL_BYTES)
    }
    child.stdout.on('data', keep)
    child.stderr.on('data', keep)
    const kill = (): void => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL')
      } catch { /* already gone */ }
    }
    signal.addEventListener('abort', kill, { once: true })
    child.on('error', (err) => {
      signal.removeEventListener('abort', kill)
      reject(new UpswarmError(code, `${what} could not start: ${err.message}`, { cause: err }))
    })
    child.on('close', (exit, sig) => {
      signal.removeEventListener('abort', kill)
      if (exit === 0) return resolve()
      const said = tail.toString('utf8').trim()
      const how = signal.aborted ? 'was stopped' : exit !== null ? `exited with ${exit}` : `was killed by ${sig}`
      reject(new UpswarmError(code, `${what} ${how}${said ? `: ${said.split('\n').slice(-3).join(' / ')}` : ''}`, { details: { hook: input.hook, exit, signal: sig } }))
    })
  })
}
