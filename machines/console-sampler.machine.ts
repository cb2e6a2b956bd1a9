// Issue 16 item 4: the fleet console's sampler. It reads the fleet, the server pool and the
// alerts every `interval`, keeps the newest reading and a bounded series of the clients per
// revision since the console started (the page's "fleet by revision over time"). A control used
// on the page asks for a reading at once (`sample.now`); one asked for while a reading runs is
// taken right after it. A failed reading keeps the previous one and says why. Pure: `sample` is
// provided by actors/console.
import { assign, fromPromise, setup } from 'xstate'

/** Clients per revision, per product: `counts[product][rev]`. */
export type FleetCounts = Record<string, Record<string, number>>

export interface SeriesPoint {
  /** When the reading was taken (ISO 8601). */
  at: string
  counts: FleetCounts
}

/** What one reading returns: the counts for the series, and whatever the page shows of it. */
export interface ConsoleReading<D = unknown> {
  at: string
  counts: FleetCounts
  data: D
}

export interface ConsoleSamplerInput {
  intervalMs: number
  /** The series keeps at most this many points (the oldest go first). */
  maxPoints: number
}

export interface ConsoleSamplerContext extends ConsoleSamplerInput {
  latest: ConsoleReading | null
  series: SeriesPoint[]
  /** Why the newest reading failed (the previous one is still `latest`), or null. */
  error: { at: string; message: string } | null
  readings: number
  /** A reading was asked for while one ran: take another as soon as it ends. */
  again: boolean
}

export type ConsoleSamplerEvent = { type: 'sample.now' } | { type: 'stop' }

const errorOf = ({ event }: { event: { error: unknown } }): unknown => event.error

const notProvided = async (): Promise<never> => {
  throw new Error('console sampler machine: actor sample is not provided')
}

export const consoleSamplerMachine = setup({
  types: {
    context: {} as ConsoleSamplerContext,
    events: {} as ConsoleSamplerEvent,
    input: {} as ConsoleSamplerInput,
  },
  actors: {
    /** One reading; it gets the previous one (the alerts it held: only newer ones are read). */
    sample: fromPromise<ConsoleReading, { previous: ConsoleReading | null }>(notProvided),
  },
  actions: {
    keep: assign(({ context }, reading: ConsoleReading) => ({
      latest: reading,
      series: [...context.series, { at: reading.at, counts: reading.counts }].slice(-context.maxPoints),
      error: null,
      readings: context.readings + 1,
      again: false,
    })),
    failed: assign((_, error: unknown) => ({
      error: { at: new Date().toISOString(), message: error instanceof Error ? error.message : String(error) },
      again: false,
    })),
    askAgain: assign({ again: true }),
  },
  guards: {
    askedAgain: ({ context }) => context.again,
  },
  delays: {
    interval: ({ context }) => context.intervalMs,
  },
}).createMachine({
  id: 'consoleSampler',
  context: ({ input }) => ({ ...input, latest: null, series: [], error: null, readings: 0, again: false }),
  initial: 'sampling',
  states: {
    sampling: {
      invoke: {
        src: 'sample',
        input: ({ context }) => ({ previous: context.latest }),
        onDone: [
          { guard: 'askedAgain', target: 'sampling', reenter: true, actions: { type: 'keep', params: ({ event }) => event.output } },
          { target: 'waiting', actions: { type: 'keep', params: ({ event }) => event.output } },
        ],
        onError: [
          { guard: 'askedAgain', target: 'sampling', reenter: true, actions: { type: 'failed', params: errorOf } },
          { target: 'waiting', actions: { type: 'failed', params: errorOf } },
        ],
      },
      on: { 'sample.now': { actions: 'askAgain' } },
    },
    waiting: {
      after: { interval: 'sampling' },
      on: { 'sample.now': 'sampling' },
    },
    stopped: { type: 'final' },
  },
  on: { stop: '.stopped' },
})
