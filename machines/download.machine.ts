// One entry's download (R-VERIFY, R-ACCEL): a blob already in the local history store is used
// as is; otherwise it is fetched (the source uses K threads), verified against the signed
// manifest's SHA-1 AND SHA-256, retried on a bad or failed transfer (each attempt may reach
// another server or peer), and finally staged for the apply step. Pure: `findLocal`, `fetch`,
// `verify` and `stage` are provided by actors/updater.
import { assign, fromPromise, setup } from 'xstate'
import type { Entry, FileEntry } from '../infra/release/manifest.ts'

export const DEFAULT_MAX_ATTEMPTS = 3

export interface DownloadInput {
  entry: Entry
  /** Staging slot of the new entry; without one the blob is only stored (history prefetch). */
  slot?: string
  maxAttempts?: number
}

export interface FetchResult {
  bytesFromServers: number
  bytesFromPeers: number
}

export interface DownloadOutput {
  ok: boolean
  /** Where the content came from: the local history store, the network, or none needed. */
  source: 'local' | 'remote' | 'none'
  attempts: number
  bytesFromServers: number
  bytesFromPeers: number
  /** Why each failed attempt failed, in order. */
  errors: string[]
}

interface DownloadContext {
  entry: Entry
  slot: string | undefined
  maxAttempts: number
  attempt: number
  source: DownloadOutput['source']
  bytesFromServers: number
  bytesFromPeers: number
  errors: string[]
  ok: boolean
}

const notProvided = (name: string) => async (): Promise<never> => {
  throw new Error(`download machine: actor ${name} is not provided`)
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

export const downloadMachine = setup({
  types: {
    context: {} as DownloadContext,
    input: {} as DownloadInput,
    output: {} as DownloadOutput,
  },
  actors: {
    /** True when the local history store holds the blob and it still hashes as the manifest says (a corrupt one is dropped). */
    findLocal: fromPromise<boolean, FileEntry>(notProvided('findLocal')),
    fetch: fromPromise<FetchResult, { entry: FileEntry; attempt: number }>(notProvided('fetch')),
    /** Re-hashes what was fetched; throws (and drops it) when SHA-1 or SHA-256 differ. */
    verify: fromPromise<void, FileEntry>(notProvided('verify')),
    stage: fromPromise<void, { entry: Entry; slot: string }>(notProvided('stage')),
  },
  guards: {
    needsBlob: ({ context }) => context.entry.kind === 'file',
    foundLocally: (_, found: boolean) => found,
    attemptsLeft: ({ context }) => context.attempt < context.maxAttempts,
    hasSlot: ({ context }) => context.slot !== undefined,
  },
  actions: {
    countAttempt: assign({ attempt: ({ context }) => context.attempt + 1 }),
    recordError: assign({ errors: ({ context }, params: { error: unknown }) => [...context.errors, describe(params.error)] }),
  },
}).createMachine({
  id: 'download',
  context: ({ input }) => ({
    entry: input.entry,
    slot: input.slot,
    maxAttempts: input.maxAttempts ?? DEFAULT_MAX_ATTEMPTS,
    attempt: 0,
    source: 'none',
    bytesFromServers: 0,
    bytesFromPeers: 0,
    errors: [],
    ok: false,
  }),
  initial: 'start',
  states: {
    start: {
      always: [{ guard: 'needsBlob', target: 'checkingLocal' }, { target: 'verified' }],
    },
    checkingLocal: {
      invoke: {
        src: 'findLocal',
        input: ({ context }) => context.entry as FileEntry,
        onDone: [
          { guard: { type: 'foundLocally', params: ({ event }) => event.output }, target: 'verified', actions: assign({ source: 'local' }) },
          { target: 'fetching' },
        ],
        onError: { target: 'fetching' },
      },
    },
    fetching: {
      entry: 'countAttempt',
      invoke: {
        src: 'fetch',
        input: ({ context }) => ({ entry: context.entry as FileEntry, attempt: context.attempt }),
        onDone: {
          target: 'verifying',
          actions: assign({
            source: 'remote',
            bytesFromServers: ({ context, event }) => context.bytesFromServers + event.output.bytesFromServers,
            bytesFromPeers: ({ context, event }) => context.bytesFromPeers + event.output.bytesFromPeers,
          }),
        },
        onError: { target: 'retrying', actions: { type: 'recordError', params: ({ event }) => ({ error: event.error }) } },
      },
    },
    verifying: {
      invoke: {
        src: 'verify',
        input: ({ context }) => context.entry as FileEntry,
        onDone: { target: 'verified' },
        onError: { target: 'retrying', actions: { type: 'recordError', params: ({ event }) => ({ error: event.error }) } },
      },
    },
    retrying: {
      // R-VERIFY: a failed or bad transfer is retried (another server or peer), never installed.
      always: [{ guard: 'attemptsLeft', target: 'fetching' }, { target: 'failed' }],
    },
    verified: {
      always: [{ guard: 'hasSlot', target: 'staging' }, { target: 'done' }],
    },
    staging: {
      invoke: {
        src: 'stage',
        input: ({ context }) => ({ entry: context.entry, slot: context.slot! }),
        onDone: { target: 'done' },
        onError: { target: 'failed', actions: { type: 'recordError', params: ({ event }) => ({ error: event.error }) } },
      },
    },
    done: { type: 'final', entry: assign({ ok: true }) },
    failed: { type: 'final' },
  },
  output: ({ context }) => ({
    ok: context.ok,
    source: context.source,
    attempts: context.attempt,
    bytesFromServers: context.bytesFromServers,
    bytesFromPeers: context.bytesFromPeers,
    errors: context.errors,
  }),
})
