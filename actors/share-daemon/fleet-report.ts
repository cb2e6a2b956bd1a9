// Issue 16 item 3: a client machine's fleet reports (daemon, watch, one-shot update). The machine
// (machines/fleet-report.machine.ts) decides when, at most one per 10 s; this wires it to the
// client's state and to NATS. A report goes under the connection's own identity: the cluster lets
// a client write its own fleet entry only.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { createActor } from 'xstate'
import { errorMessage } from '../../infra/errors.ts'
import { stageOf } from '../../infra/formats/rollout.ts'
import { fleetReportOf, publishFleetReport, type FleetReport } from '../../infra/nats/fleet.ts'
import type { NatsConnection } from '../../infra/nats/connect.ts'
import { identityOf } from '../../infra/nats/identity.ts'
import { PROJECT_ROOT } from '../../infra/project-root.ts'
import { fleetReportMachine } from '../../machines/fleet-report.machine.ts'

const { version: UPSWARM_VERSION } = JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version: string }

/** What a client says of itself; the reporter adds who, when and how many. */
export type FleetState = Pick<FleetReport, 'rev' | 'health' | 'last'>

export interface FleetReporterOptions {
  product: string
  /** The key the client's stage is hashed from (its NATS user nkey: issue 16 item 1). */
  stageKey: string
  ring?: string
  role: FleetReport['role']
  /** The connection to report on, when there is one (a daemon may reach NATS late). */
  nc: () => NatsConnection | undefined
  initial: FleetState
  log?: (msg: string) => void
}

export interface FleetReporter {
  /** The client's state changed (or NATS was reached): report it, within the rate bound. */
  update(change?: Partial<FleetState>): void
  /** Stops reporting; resolves when the reports under way are sent. A report still waiting for its interval is not sent. */
  stop(): Promise<void>
}

export function startFleetReporter(o: FleetReporterOptions): FleetReporter {
  let state: FleetState = o.initial
  let seq = 0
  let inFlight = Promise.resolve()
  let failing = false
  const stage = stageOf(o.product, o.stageKey)
  const send = (): void => {
    const nc = o.nc()
    if (!nc || nc.isClosed()) return
    let report: FleetReport
    try {
      report = fleetReportOf({
        product: o.product, client: identityOf(nc), ...state, stage, ...(o.ring !== undefined ? { ring: o.ring } : {}),
        upswarm: UPSWARM_VERSION, role: o.role, seq: seq + 1, sentAt: new Date().toISOString(),
      })
    } catch (err) {
      o.log?.(`fleet report not sent: ${errorMessage(err)}`)
      return
    }
    seq++
    // Said once until a report goes through again: a cluster without the fleet stream (older) refuses every one.
    inFlight = inFlight.then(() => publishFleetReport(nc, report)).then(() => { failing = false }, (err) => {
      if (!failing) o.log?.(`fleet report not sent (said once until one is): ${errorMessage(err)}`)
      failing = true
    })
  }
  const actor = createActor(fleetReportMachine.provide({ actions: { send } }))
  actor.start()
  actor.send({ type: 'changed' })
  return {
    update(change) {
      if (change) state = { ...state, ...change }
      actor.send({ type: 'changed' })
    },
    async stop() {
      actor.send({ type: 'stop' })
      actor.stop()
      await inFlight
    },
  }
}

/** The health part of a report for an update that installed `to` (hooks and health check passed, or none set). */
export const installed = (from: number, to: number, bytesFromPeers: number, bytesFromServers: number): FleetState => {
  const at = new Date().toISOString()
  return { rev: to, health: { state: 'ok', rev: to, at }, last: { from, to, bytesFromPeers, bytesFromServers, at } }
}

/** A revision that failed its health check or post-install hook and was taken back to `to` (issue 16 item 2). */
export const reverted = (rev: number, to: number, reason: string): Partial<FleetState> =>
  ({ rev: to, health: { state: 'reverted', rev, to, reason: reason.slice(0, 500), at: new Date().toISOString() } })

/** An update that did not complete. */
export const failed = (reason: string): Partial<FleetState> => ({ health: { state: 'failed', reason: reason.slice(0, 500), at: new Date().toISOString() } })
