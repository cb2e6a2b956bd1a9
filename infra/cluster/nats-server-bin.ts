// Finds the nats-server binary chosen by scripts/ensure-tools.mjs.
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { UpswarmError } from '../errors.ts'
import { PROJECT_ROOT } from '../project-root.ts'

export { PROJECT_ROOT }

export interface NatsServerBinary {
  path: string
  version: [number, number, number]
  /** `jetstream { sync_interval: always }` exists from 2.10 on. */
  supportsSyncAlways: boolean
}

let cached: NatsServerBinary | undefined

export function natsServerBinary(): NatsServerBinary {
  if (cached) return cached
  const candidates: string[] = []
  if (process.env.UPSWARM_NATS_SERVER) candidates.push(process.env.UPSWARM_NATS_SERVER)
  const recorded = join(PROJECT_ROOT, '.tools', 'nats-server.path')
  if (existsSync(recorded)) candidates.push(readFileSync(recorded, 'utf8').trim())
  candidates.push('nats-server', '/usr/sbin/nats-server', '/usr/bin/nats-server')
  for (const path of candidates) {
    const r = spawnSync(path, ['--version'], { encoding: 'utf8' })
    const m = r.status === 0 ? /v?(\d+)\.(\d+)\.(\d+)/.exec(r.stdout + r.stderr) : null
    if (!m) continue
    const version = [Number(m[1]), Number(m[2]), Number(m[3])] as [number, number, number]
    cached = { path, version, supportsSyncAlways: version[0] > 2 || (version[0] === 2 && version[1] >= 10) }
    return cached
  }
  throw new UpswarmError('UPSWARM_E_NATS_SERVER_MISSING',
    'nats-server not found. Run `node scripts/ensure-tools.mjs` (it fetches Debian\'s package), ' +
    'or `apt-get install -y nats-server`, or set UPSWARM_NATS_SERVER to a nats-server binary.')
}
