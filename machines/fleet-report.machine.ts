// Issue 16 item 3: when a client machine sends its fleet report. A change is sent at once when
// nothing was sent for MIN_INTERVAL; changes within that interval wait and go as one report when
// it ends. Unchanged, the report is sent again as a heartbeat. So a client never sends more than
// one report per MIN_INTERVAL, and the fleet view is at most MIN_INTERVAL behind a change.
// `send` reads the client's state when it runs: a waiting report carries the newest.
import { assign, setup } from 'xstate'

export const FLEET_REPORT_MIN_INTERVAL_MS = 10_000
/** A client that changes nothing still says it is there this often (the stream drops reports older than 30 days). */
export const FLEET_REPORT_HEARTBEAT_MS = 5 * 60_000

export type FleetReportEvent = { type: 'changed' } | { type: 'stop' }

export const fleetReportMachine = setup({
  types: {
    context: {} as { waiting: boolean },
    events: {} as FleetReportEvent,
  },
  delays: {
    minInterval: FLEET_REPORT_MIN_INTERVAL_MS,
    // Counted from the end of the quiet interval after the last report.
    heartbeat: FLEET_REPORT_HEARTBEAT_MS - FLEET_REPORT_MIN_INTERVAL_MS,
  },
  actions: {
    send: () => {},
    wait: assign({ waiting: true }),
    sent: assign({ waiting: false }),
  },
  guards: {
    waiting: ({ context }) => context.waiting,
  },
}).createMachine({
  id: 'fleetReport',
  context: { waiting: false },
  initial: 'ready',
  states: {
    /** Nothing sent for at least MIN_INTERVAL: a change goes at once. */
    ready: {
      on: { changed: { target: 'quiet', actions: 'send' } },
      after: { heartbeat: { target: 'quiet', actions: 'send' } },
    },
    /** A report went less than MIN_INTERVAL ago: changes wait for its end. */
    quiet: {
      on: { changed: { actions: 'wait' } },
      after: {
        minInterval: [
          { guard: 'waiting', target: 'quiet', reenter: true, actions: ['sent', 'send'] },
          { target: 'ready' },
        ],
      },
    },
    stopped: { type: 'final' },
  },
  on: { stop: '.stopped' },
})
