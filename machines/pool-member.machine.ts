// R-PROXY pool membership of one repository server, as seen by a proxy: joining → healthy →
// suspect → down, driven by the server's heartbeats and by failed requests. Only healthy
// members are assigned requests. A server caught sending bytes that do not match the signed
// manifest (R-VERIFY) is quarantined: its heartbeats keep it known but not assigned until the
// quarantine ends, so the next requests go to other servers.
import { assign, setup } from 'xstate'

export interface MemberStatus {
  weight: number
  synced: Record<string, number>
  requests: number
  bytesServed: number
  inflight: number
  /** Releases the server parked after every try failed (issue 11 item 6): shown by `stats`. */
  parked?: Array<{ product: string; rev: number; seq: number; reason: string; at: string }>
  /** The release the server waits to sync until its disk has room (issue 11 item 8): shown by `stats`. */
  stalled?: { product: string; rev: number; seq: number; reason: string; since: string; needed: number }
  /** Per product, the newest revision an operator pruned (issue 11 item 8): shown by `stats`. */
  pruned?: Record<string, number>
  /** Release formats the server serves (absent: format 1 only) and its newest format-2 revision per product (docs/formats.md §2.2). */
  formats?: number[]
  synced2?: Record<string, number>
}

export interface PoolMemberContext {
  id: string
  status: MemberStatus
  lastSeen: number
  missed: number
  /** Why the member was last quarantined, if it was. */
  suspectReason?: string
}

export type PoolMemberEvent =
  | { type: 'heartbeat'; status: MemberStatus; at: number }
  | { type: 'request.failed'; reason: string }
  | { type: 'server.suspect'; reason: string }

export const HEARTBEAT_INTERVAL_MS = 1000
/** How long a server that sent bad bytes gets no requests. */
export const QUARANTINE_MS = 60_000

export const poolMemberMachine = setup({
  types: {
    context: {} as PoolMemberContext,
    events: {} as PoolMemberEvent,
    input: {} as { id: string; status: MemberStatus; at: number },
  },
  delays: {
    // Two missed heartbeats make a member suspect; five make it down.
    suspectAfter: 2.5 * HEARTBEAT_INTERVAL_MS,
    downAfter: 2.5 * HEARTBEAT_INTERVAL_MS,
    quarantine: QUARANTINE_MS,
  },
  actions: {
    record: assign(({ event }) =>
      event.type === 'heartbeat' ? { status: event.status, lastSeen: event.at, missed: 0 } : {}),
    countMiss: assign({ missed: ({ context }) => context.missed + 1 }),
    noteSuspicion: assign(({ event }) => (event.type === 'server.suspect' ? { suspectReason: event.reason } : {})),
  },
}).createMachine({
  id: 'poolMember',
  context: ({ input }) => ({ id: input.id, status: input.status, lastSeen: input.at, missed: 0 }),
  initial: 'joining',
  // Bad bytes are a fact about the server, whatever state its heartbeats put it in.
  on: { 'server.suspect': { target: '.quarantined', actions: 'noteSuspicion' } },
  states: {
    joining: {
      // The first heartbeat created the member; it is healthy once the next one confirms it.
      on: { heartbeat: { target: 'healthy', actions: 'record' } },
      after: { suspectAfter: { target: 'down', actions: 'countMiss' } },
    },
    healthy: {
      on: {
        heartbeat: { target: 'healthy', reenter: true, actions: 'record' },
        'request.failed': 'suspect',
      },
      after: { suspectAfter: { target: 'suspect', actions: 'countMiss' } },
    },
    suspect: {
      on: { heartbeat: { target: 'healthy', actions: 'record' } },
      after: { downAfter: { target: 'down', actions: 'countMiss' } },
    },
    quarantined: {
      // Heartbeats keep its status current without ending the quarantine early.
      on: { heartbeat: { actions: 'record' } },
      after: { quarantine: 'suspect' },
    },
    down: {
      on: { heartbeat: { target: 'joining', actions: 'record' } },
    },
  },
})
