// Issue 13 item 2: the working copy's file monitor. It walks the tree once, placing a watch on
// every directory, then answers "what changed since this token" (infra/store/working-copy/
// tree-watch.ts) while it watches. When the watches may have missed something (the kernel's event
// queue may have overflowed, a watch failed) it walks again: tokens from before get `all`, so a
// status then lstats every path, as it does without a monitor. A walk that fails (the inotify
// watch limit, an unreadable directory, a tree that changes faster than it can be watched: the
// walk places its watches again itself when events are lost meanwhile) stops the monitor with
// the reason. Pure: `walk` is
// provided by actors/monitor.
import { assign, fromPromise, setup } from 'xstate'

export interface TreeMonitorContext {
  /** Walks done (the first included). */
  walks: number
  /** Why the last re-walk happened, or null. */
  lostBecause: string | null
  /** Why the monitor stopped on its own, or null. */
  error: string | null
}

export type TreeMonitorEvent = { type: 'watch.lost'; why: string } | { type: 'stop' }

const errorOf = ({ event }: { event: { error: unknown } }): unknown => event.error

const notProvided = async (): Promise<never> => {
  throw new Error('tree monitor machine: actor walk is not provided')
}

export const treeMonitorMachine = setup({
  types: {
    context: {} as TreeMonitorContext,
    events: {} as TreeMonitorEvent,
  },
  actors: {
    /** Places the watches on the whole tree (again), closing those of directories gone. */
    walk: fromPromise<void>(notProvided),
  },
  actions: {
    walked: assign(({ context }) => ({ walks: context.walks + 1 })),
    lost: assign((_, why: string) => ({ lostBecause: why })),
    failed: assign((_, error: unknown) => ({ error: error instanceof Error ? error.message : String(error) })),
  },
}).createMachine({
  id: 'treeMonitor',
  context: { walks: 0, lostBecause: null, error: null },
  initial: 'walking',
  states: {
    walking: {
      invoke: {
        src: 'walk',
        onDone: { target: 'watching', actions: 'walked' },
        onError: { target: 'failed', actions: { type: 'failed', params: errorOf } },
      },
    },
    watching: {
      on: {
        'watch.lost': { target: 'walking', actions: { type: 'lost', params: ({ event }) => event.why } },
      },
    },
    failed: { type: 'final' },
    stopped: { type: 'final' },
  },
  on: {
    stop: '.stopped',
  },
})
