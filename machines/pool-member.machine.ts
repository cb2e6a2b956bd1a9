// R-PROXY pool membership of one repository server, as seen by a proxy: joining → healthy →
// suspect → down, driven by the server's heartbeats and by failed requests. Only healthy
// members are assigned requests.
import { assign, setup } from 'xstate'

export interface MemberStatus {
  weight: number
  synced: Record<string, number>
  requests: number
  bytesServed: number
  inflight: number
}

export interface PoolMemberContext {
  id: string
  status: MemberStatus
  lastSeen: number
  missed: number
}

export type PoolMemberEvent =
  | { type: 'heartbeat'; status: MemberStatus; at: number }
  | { type: 'request.failed'; reason: string }

export const HEARTBEAT_INTERVAL_MS = 1000

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
  },
  actions: {
    record: assign(({ event }) =>
      event.type === 'heartbeat' ? { status: event.status, lastSeen: event.at, missed: 0 } : {}),
    countMiss: assign({ missed: ({ context }) => context.missed + 1 }),
  },
}).createMachine({
  id: 'poolMember',
  context: ({ input }) => ({ id: input.id, status: input.status, lastSeen: input.at, missed: 0 }),
  initial: 'joining',
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
    down: {
      on: { heartbeat: { target: 'joining', actions: 'record' } },
    },
  },
})
