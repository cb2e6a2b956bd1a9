// The publisher (ARCHITECTURE §2): one publish as a statechart — claiming (the product is this
// key's: root of trust, trust file, stream) → scanning (the tree) → uploading (only blobs the
// object store lacks) → reading (the product's release chain: its head and last sequence) →
// signing (revision head + 1, parent = head) → appending (optimistic concurrency on the release
// subject) → feeding (the publisher key's release feed, R-DHT-2) → done. A tree equal to the head
// appends nothing and goes to feeding; an append that lost the race for its revision reads the
// chain again (at most `maxRevAttempts` times). Every failure is the `failed` state with the
// phase, code and message. Pure: the I/O is provided by actors/publisher.
import { and, assign, emit, fromPromise, setup } from 'xstate'
import type { Entry, SignedRelease } from '../infra/release/manifest.ts'
import type { SkippedMessage } from '../infra/release/release-log.ts'

export type PublishPhase = 'claiming' | 'scanning' | 'uploading' | 'reading' | 'signing' | 'appending' | 'feeding'

export interface PublishInput {
  product: string
  /** Concurrent appends that may beat this one before it gives up (default 20). */
  maxRevAttempts?: number
}

/** The keys whose releases count as this product's, and whether this publish pinned it. */
export interface Claim {
  keys: string[]
  pinned: boolean
}

export interface ScannedTree {
  entries: Entry[]
  /** Path in the release → absolute path on disk. */
  files: Map<string, string>
}

export interface Uploaded {
  newBlobs: number
  newBytes: number
}

export interface ChainHead {
  release: SignedRelease
  seq: number
  manifestSha256: string
}

export interface ChainRead {
  head: ChainHead | null
  /** Sequence of the last message on the subject (junk included): the append expects it. */
  lastSeq: number
  /** The head is the release this publish signed (an earlier append of it was stored). */
  headIsOurs: boolean
  /** The head has this tree and label: nothing new to append. */
  headSameContent: boolean
  /** Messages on the subject that are not the product's releases (junk, other keys, replays). */
  skipped: SkippedMessage[]
}

export interface Appended {
  seq: number
}

/** The feed's outcome as the publisher reports it (actors/publisher/feed.ts). */
export type FeedResult = { appended: true; length: number; added: number; servers: number } | { appended: false; reason: string }

export interface PublishFailure {
  phase: PublishPhase
  /** An error code of infra/errors.ts when the cause has one. */
  code: string
  message: string
  cause: unknown
}

export interface PublishContext {
  product: string
  maxRevAttempts: number
  revAttempts: number
  claim?: Claim
  tree?: ScannedTree
  uploaded?: Uploaded
  chain?: ChainRead
  /** The release this publish signed (the newest attempt). */
  mine?: SignedRelease
  /** The release the feed is brought up to, its stream sequence, and whether this publish appended it. */
  release?: SignedRelease
  seq?: number
  appended: boolean
  /** Skipped messages over every read of the chain, by stream sequence. */
  skipped: SkippedMessage[]
  feed?: FeedResult
  failure?: PublishFailure
}

export interface PublishOutput {
  outcome: 'done' | 'failed'
  claim?: Claim
  tree?: ScannedTree
  uploaded?: Uploaded
  release?: SignedRelease
  seq?: number
  appended: boolean
  skipped: SkippedMessage[]
  feed?: FeedResult
  failure?: PublishFailure
}

export type PublishEvent = { type: 'publish.start' }
export type PublishEmitted = { type: 'publish.phase'; phase: PublishPhase }

export const MAX_REV_ATTEMPTS = 20

const notProvided = (name: string) => async (): Promise<never> => {
  throw new Error(`publish machine: actor ${name} is not provided`)
}

const failure = (phase: PublishPhase, error: unknown, message?: string): PublishFailure => {
  const e = error as { code?: unknown; message?: unknown } | undefined
  return {
    phase,
    code: typeof e?.code === 'string' && e.code.startsWith('UPSWARM_E_') ? e.code : 'UPSWARM_E_PUBLISH',
    message: message ?? (typeof e?.message === 'string' ? e.message : String(error)),
    cause: error,
  }
}

export const publishMachine = setup({
  types: {
    context: {} as PublishContext,
    events: {} as PublishEvent,
    input: {} as PublishInput,
    output: {} as PublishOutput,
    emitted: {} as PublishEmitted,
  },
  actors: {
    claim: fromPromise<Claim, { product: string }>(notProvided('claim')),
    scan: fromPromise<ScannedTree, void>(notProvided('scan')),
    upload: fromPromise<Uploaded, { tree: ScannedTree }>(notProvided('upload')),
    readChain: fromPromise<ChainRead, { claim: Claim; tree: ScannedTree; mine: SignedRelease | undefined }>(notProvided('readChain')),
    sign: fromPromise<SignedRelease, { rev: number; parent: string | undefined; tree: ScannedTree }>(notProvided('sign')),
    append: fromPromise<Appended, { release: SignedRelease; lastSeq: number }>(notProvided('append')),
    feed: fromPromise<FeedResult, { release: SignedRelease; seq: number }>(notProvided('feed')),
  },
  guards: {
    /** The append failed because another message took the subject's next sequence first. */
    raced: (_, _error: unknown) => false,
    mayRetryRev: ({ context }) => context.revAttempts < context.maxRevAttempts,
    headIsOurs: (_, chain: ChainRead) => chain.headIsOurs,
    headSameContent: (_, chain: ChainRead) => chain.headSameContent,
  },
  actions: {
    announce: emit((_, phase: PublishPhase) => ({ type: 'publish.phase' as const, phase })),
    fail: assign((_, f: PublishFailure) => ({ failure: f })),
    keepSkipped: assign(({ context }, chain: ChainRead) => {
      const bySeq = new Map(context.skipped.map((m) => [m.seq, m]))
      for (const m of chain.skipped) bySeq.set(m.seq, m)
      return { skipped: [...bySeq.values()].sort((a, b) => a.seq - b.seq) }
    }),
  },
}).createMachine({
  id: 'publish',
  context: ({ input }) => ({ product: input.product, maxRevAttempts: input.maxRevAttempts ?? MAX_REV_ATTEMPTS, revAttempts: 0, appended: false, skipped: [] }),
  initial: 'idle',
  states: {
    idle: { on: { 'publish.start': 'claiming' } },
    claiming: {
      entry: { type: 'announce', params: 'claiming' },
      invoke: {
        src: 'claim',
        input: ({ context }) => ({ product: context.product }),
        onDone: { target: 'scanning', actions: assign({ claim: ({ event }) => event.output }) },
        onError: { target: 'failed', actions: { type: 'fail', params: ({ event }) => failure('claiming', event.error) } },
      },
    },
    scanning: {
      entry: { type: 'announce', params: 'scanning' },
      invoke: {
        src: 'scan',
        onDone: { target: 'uploading', actions: assign({ tree: ({ event }) => event.output }) },
        onError: { target: 'failed', actions: { type: 'fail', params: ({ event }) => failure('scanning', event.error) } },
      },
    },
    uploading: {
      entry: { type: 'announce', params: 'uploading' },
      invoke: {
        src: 'upload',
        input: ({ context }) => ({ tree: context.tree! }),
        onDone: { target: 'reading', actions: assign({ uploaded: ({ event }) => event.output }) },
        onError: { target: 'failed', actions: { type: 'fail', params: ({ event }) => failure('uploading', event.error) } },
      },
    },
    reading: {
      entry: { type: 'announce', params: 'reading' },
      invoke: {
        src: 'readChain',
        input: ({ context }) => ({ claim: context.claim!, tree: context.tree!, mine: context.mine }),
        onDone: [
          {
            // An earlier append of ours was stored although its ack was lost: that is our revision.
            guard: { type: 'headIsOurs', params: ({ event }) => event.output },
            target: 'feeding',
            actions: [{ type: 'keepSkipped', params: ({ event }) => event.output }, assign(({ event }) => ({ chain: event.output, release: event.output.head!.release, seq: event.output.head!.seq, appended: true }))],
          },
          {
            guard: { type: 'headSameContent', params: ({ event }) => event.output },
            target: 'feeding',
            actions: [{ type: 'keepSkipped', params: ({ event }) => event.output }, assign(({ event }) => ({ chain: event.output, release: event.output.head!.release, seq: event.output.head!.seq, appended: false }))],
          },
          { target: 'signing', actions: [{ type: 'keepSkipped', params: ({ event }) => event.output }, assign({ chain: ({ event }) => event.output })] },
        ],
        onError: { target: 'failed', actions: { type: 'fail', params: ({ event }) => failure('reading', event.error) } },
      },
    },
    signing: {
      entry: { type: 'announce', params: 'signing' },
      invoke: {
        src: 'sign',
        input: ({ context }) => ({
          rev: (context.chain!.head?.release.manifest.rev ?? 0) + 1,
          parent: context.chain!.head?.manifestSha256,
          tree: context.tree!,
        }),
        onDone: { target: 'appending', actions: assign({ mine: ({ event }) => event.output }) },
        onError: { target: 'failed', actions: { type: 'fail', params: ({ event }) => failure('signing', event.error) } },
      },
    },
    appending: {
      entry: [{ type: 'announce', params: 'appending' }, assign({ revAttempts: ({ context }) => context.revAttempts + 1 })],
      invoke: {
        src: 'append',
        input: ({ context }) => ({ release: context.mine!, lastSeq: context.chain!.lastSeq }),
        onDone: { target: 'feeding', actions: assign(({ context, event }) => ({ release: context.mine!, seq: event.output.seq, appended: true })) },
        onError: [
          // Something else was appended meanwhile: read the chain again and number anew.
          { guard: and([{ type: 'raced', params: ({ event }: { event: { error: unknown } }) => event.error }, 'mayRetryRev']), target: 'reading' },
          {
            guard: { type: 'raced', params: ({ event }: { event: { error: unknown } }) => event.error },
            target: 'failed',
            actions: {
              type: 'fail',
              params: ({ context, event }) => failure('appending', event.error,
                `gave up after ${context.maxRevAttempts} concurrent appends to ${context.product}'s subject raced this one; retry`),
            },
          },
          {
            target: 'failed',
            actions: {
              type: 'fail',
              params: ({ context, event }) => failure('appending', event.error,
                `cannot append revision ${context.mine!.manifest.rev} of ${context.product} to the release stream: ${(event.error as Error)?.message ?? String(event.error)}`),
            },
          },
        ],
      },
    },
    feeding: {
      entry: { type: 'announce', params: 'feeding' },
      invoke: {
        src: 'feed',
        input: ({ context }) => ({ release: context.release!, seq: context.seq! }),
        onDone: { target: 'done', actions: assign({ feed: ({ event }) => event.output }) },
        onError: { target: 'failed', actions: { type: 'fail', params: ({ event }) => failure('feeding', event.error) } },
      },
    },
    done: { type: 'final' },
    failed: { type: 'final' },
  },
  output: ({ context }) => ({
    outcome: context.failure ? 'failed' : 'done',
    ...(context.claim ? { claim: context.claim } : {}),
    ...(context.tree ? { tree: context.tree } : {}),
    ...(context.uploaded ? { uploaded: context.uploaded } : {}),
    ...(context.release ? { release: context.release } : {}),
    ...(context.seq !== undefined ? { seq: context.seq } : {}),
    appended: context.appended,
    skipped: context.skipped,
    ...(context.feed ? { feed: context.feed } : {}),
    ...(context.failure ? { failure: context.failure } : {}),
  }),
})
