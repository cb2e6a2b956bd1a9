// The notary (issue 10 item 7, TUF's timestamp role) as a statechart: while `notarizing` it
// re-signs every product's fresh statement every `signInterval` on the machine's clock (new
// releases and roots are signed at once by the wiring, as they arrive), until `stop`. Pure: the
// signing is provided by actors/notary.
import { setup } from 'xstate'

export interface NotaryInput {
  /** How often every product is signed again, in ms. */
  intervalMs: number
}

export interface NotaryContext {
  intervalMs: number
}

export type NotaryEvent = { type: 'stop' }

export const notaryMachine = setup({
  types: {
    context: {} as NotaryContext,
    events: {} as NotaryEvent,
    input: {} as NotaryInput,
  },
  actions: {
    /** Take the roots that extend the chain, then sign every product again. */
    resignAll: () => {},
  },
  delays: {
    signInterval: ({ context }) => context.intervalMs,
  },
}).createMachine({
  id: 'notary',
  context: ({ input }) => ({ intervalMs: input.intervalMs }),
  initial: 'notarizing',
  states: {
    notarizing: {
      after: { signInterval: { target: 'notarizing', reenter: true, actions: 'resignAll' } },
      on: { stop: 'stopped' },
    },
    stopped: { type: 'final' },
  },
})
