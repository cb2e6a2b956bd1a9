// The publisher (ARCHITECTURE §2): one publish as a statechart — claiming (the product is this
// key's: root of trust, trust file, stream; which formats it emits) → scanning (the tree, and its
// format-2 nodes) → uploading (only blobs and nodes the object store lacks) → reading (the
// product's release chains: heads and last sequences) → signing (revision head + 1, parent = head)
// → appending (optimistic concurrency on the release subject) → feeding (the publisher key's
// release feed, R-DHT-2) → done. Format 2 (docs/formats.md §2.2, issue 13 item 3): when the root's
// `formats` holds 2, encoding (issue 15: deltas from the previous format-2 release and compressed
// files; a failure there costs bytes, never the release), signing2 and appending2 put the format-2 release first — the serialization
// point — and the format-1 manifest of the same revision follows when `formats` holds 1; a
// format-2 release whose format-1 manifest is missing (a publish died between the two appends) is
// repaired first (repairing). A tree equal to the head appends nothing; an append that lost the
// race for its revision reads the chains again (at most `maxRevAttempts` times). Every failure is
// the `failed` state with the phase, code and message. Pure: the I/O is provided by actors/publisher.
import { and, assign, emit, fromPromise, setup } from 'xstate'
import type { ChunkRef, PackRef } from '../infra/formats/tree-node.ts'
import type { BuiltTree } from '../infra/formats/tree-builder.ts'
import type { Entry, SignedRelease } from '../infra/release/manifest.ts'
import type { SkippedMessage } from '../infra/release/release-log.ts'

export type PublishPhase = 'claiming' | 'scanning' | 'uploading' | 'reading' | 'repairing' | 'encoding' | 'signing' | 'appending' | 'feeding'

export interface PublishInput {
  product: string
  /** Concurrent appends that may beat this one before it gives up (default 20). */
  maxRevAttempts?: number
}

/** The keys whose releases count as this product's, and whether this publish pinned it. */
export interface Claim {
  keys: string[]
  pinned: boolean
  /** Release formats to emit (the root's `formats`; [1] without a root, as before format 2). */
  formats?: number[]
  /** Version of the root under which this key publishes (format 2's `root` field). */
  rootVersion?: number
}

export interface ScannedTree {
  entries: Entry[]
  /** Path in the release → absolute path on disk. */
  files: Map<string, string>
  /** Format 2: each large file's chunks, cut in the scan's read pass. */
  chunks?: Map<string, ChunkRef[]>
  /** Format 2: the tree's nodes, built from the scan. */
  tree2?: BuiltTree
}

export interface Uploaded {
  newBlobs: number
  newBytes: number
  /** Format-2 tree nodes the object store did not hold yet. */
  newNodes?: number
  /** Issue 13 item 4: the packs holding the release's small units (format 2 only), and how many were new. */
  packs?: PackRef[]
  newPacks?: number
}

/** The newest format-2 release of the product. */
export interface Head2 {
  rev: number
  id: string
  seq: number
  tree: string
  label?: string
  /** The format-1 manifest of the same revision it names, when there is one. */
  v1?: string
}

/** Issue 15: the deltas of a format-2 release (actors/publisher/deltas.ts). */
export interface Deltas {
  /** Delta-index node hashes: the release's `deltas`. */
  indexes: string[]
  deltas: number
  deltaBytes: number
  targetBytes: number
  uploaded: number
  /** Issue 13 item 4: packs holding the delta objects (format 2 only). */
  packs?: PackRef[]
}

/** A format-2 release signed by this publish. */
export interface Release2 {
  text: string
  id: string
  rev: number
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
  /** Format 2: the newest release on its subject. */
  head2?: Head2
  /** The format-2 head names a format-1 manifest that the release stream lacks: repair it first. */
  gap?: boolean
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
  /** The format-2 release this publish signed (the newest attempt). */
  mine2?: Release2
  /** Issue 15: the deltas it names, or why there are none (a failed encoding costs bytes, never the release). */
  deltas?: Deltas
  deltaWarning?: string
  /** Format 2: the release appended (or found unchanged) and its stream sequence. */
  release2?: Release2 & { seq: number }
  /** Gap repairs done (at most one per reading, so a repair that does not take cannot loop). */
  repairs: number
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
  release2?: Release2 & { seq: number }
  deltas?: Deltas
  deltaWarning?: string
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

/** The revision after both chains' heads. */
const nextRev = (chain: ChainRead): number => Math.max(chain.head?.release.manifest.rev ?? 0, chain.head2?.rev ?? 0) + 1

/** The releases a read chain leaves in hand when nothing is appended. */
const heads = (chain: ChainRead): Pick<PublishContext, 'release' | 'seq' | 'release2'> => ({
  ...(chain.head ? { release: chain.head.release, seq: chain.head.seq } : {}),
  ...(chain.head2 ? { release2: { text: '', id: chain.head2.id, rev: chain.head2.rev, seq: chain.head2.seq } } : {}),
})

/** An append's failure: a lost race reads the chains again (a bounded number of times), anything else fails. */
const appendFailed = (stream: string) => [
  // Something else was appended meanwhile: read the chain again and number anew.
  { guard: and([{ type: 'raced' as const, params: ({ event }: { event: { error: unknown } }) => event.error }, 'mayRetryRev']), target: 'reading' },
  {
    guard: { type: 'raced' as const, params: ({ event }: { event: { error: unknown } }) => event.error },
    target: 'failed',
    actions: {
      type: 'fail' as const,
      params: ({ context }: { context: PublishContext; event: { error: unknown } }) => failure('appending', undefined,
        `gave up after ${context.maxRevAttempts} concurrent appends to ${context.product}'s subject raced this one; retry`),
    },
  },
  {
    target: 'failed',
    actions: {
      type: 'fail' as const,
      params: ({ context, event }: { context: PublishContext; event: { error: unknown } }) => failure('appending', event.error,
        `cannot append revision ${nextRev(context.chain!)} of ${context.product} to the ${stream}: ${(event.error as Error)?.message ?? String(event.error)}`),
    },
  },
]

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
    scan: fromPromise<ScannedTree, { claim: Claim }>(notProvided('scan')),
    upload: fromPromise<Uploaded, { tree: ScannedTree }>(notProvided('upload')),
    readChain: fromPromise<ChainRead, { claim: Claim; tree: ScannedTree; mine: SignedRelease | undefined; mine2: Release2 | undefined }>(notProvided('readChain')),
    sign: fromPromise<SignedRelease, { rev: number; parent: string | undefined; tree: ScannedTree }>(notProvided('sign')),
    append: fromPromise<Appended, { release: SignedRelease; lastSeq: number }>(notProvided('append')),
    repair: fromPromise<void, { chain: ChainRead }>(notProvided('repair')),
    encodeDeltas: fromPromise<Deltas, { head2: Head2 | undefined; tree: ScannedTree }>(notProvided('encodeDeltas')),
    sign2: fromPromise<Release2, { rev: number; head2: Head2 | undefined; v1: SignedRelease | undefined; tree: ScannedTree; claim: Claim; deltas: string[]; packs: PackRef[] }>(notProvided('sign2')),
    append2: fromPromise<Appended, { release: Release2 }>(notProvided('append2')),
    feed: fromPromise<FeedResult, { release: SignedRelease; seq: number }>(notProvided('feed')),
  },
  guards: {
    /** The append failed because another message took the subject's next sequence first. */
    raced: (_, _error: unknown) => false,
    mayRetryRev: ({ context }) => context.revAttempts < context.maxRevAttempts,
    wants1: ({ context }) => (context.claim?.formats ?? [1]).includes(1),
    wants2: ({ context }) => (context.claim?.formats ?? [1]).includes(2),
    mayRepair: ({ context }, chain: ChainRead) => !!chain.gap && context.repairs < context.maxRevAttempts,
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
  context: ({ input }) => ({ product: input.product, maxRevAttempts: input.maxRevAttempts ?? MAX_REV_ATTEMPTS, revAttempts: 0, repairs: 0, appended: false, skipped: [] }),
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
        input: ({ context }) => ({ claim: context.claim! }),
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
        input: ({ context }) => ({ claim: context.claim!, tree: context.tree!, mine: context.mine, mine2: context.mine2 }),
        onDone: [
          {
            // docs/formats.md §2.2: a publish died between the two appends; its format-1 manifest goes first.
            guard: { type: 'mayRepair', params: ({ event }) => event.output },
            target: 'repairing',
            actions: [{ type: 'keepSkipped', params: ({ event }) => event.output }, assign({ chain: ({ event }) => event.output })],
          },
          {
            // An earlier append of ours was stored although its ack was lost: that is our revision.
            guard: { type: 'headIsOurs', params: ({ event }) => event.output },
            target: 'settled',
            actions: [{ type: 'keepSkipped', params: ({ event }) => event.output }, assign(({ event }) => ({ chain: event.output, ...heads(event.output), appended: true }))],
          },
          {
            guard: { type: 'headSameContent', params: ({ event }) => event.output },
            target: 'settled',
            actions: [{ type: 'keepSkipped', params: ({ event }) => event.output }, assign(({ event }) => ({ chain: event.output, ...heads(event.output), appended: false }))],
          },
          { guard: 'wants1', target: 'signing', actions: [{ type: 'keepSkipped', params: ({ event }) => event.output }, assign({ chain: ({ event }) => event.output })] },
          { target: 'encoding', actions: [{ type: 'keepSkipped', params: ({ event }) => event.output }, assign({ chain: ({ event }) => event.output })] },
        ],
        onError: { target: 'failed', actions: { type: 'fail', params: ({ event }) => failure('reading', event.error) } },
      },
    },
    repairing: {
      entry: [{ type: 'announce', params: 'repairing' }, assign({ repairs: ({ context }) => context.repairs + 1 })],
      invoke: {
        src: 'repair',
        input: ({ context }) => ({ chain: context.chain! }),
        onDone: 'reading',
        onError: [
          // Another publisher repaired it first: read again.
          { guard: and([{ type: 'raced', params: ({ event }: { event: { error: unknown } }) => event.error }, 'mayRetryRev']), target: 'reading' },
          { target: 'failed', actions: { type: 'fail', params: ({ event }) => failure('repairing', event.error) } },
        ],
      },
    },
    /** Nothing to append: the feed is brought up to the format-1 head, when there is one. */
    settled: {
      always: [{ guard: ({ context }) => context.release !== undefined, target: 'feeding' }, { target: 'done' }],
    },
    signing: {
      entry: { type: 'announce', params: 'signing' },
      invoke: {
        src: 'sign',
        input: ({ context }) => ({ rev: nextRev(context.chain!), parent: context.chain!.head?.manifestSha256, tree: context.tree! }),
        onDone: [
          { guard: 'wants2', target: 'encoding', actions: assign({ mine: ({ event }) => event.output }) },
          { target: 'appending', actions: assign({ mine: ({ event }) => event.output }) },
        ],
        onError: { target: 'failed', actions: { type: 'fail', params: ({ event }) => failure('signing', event.error) } },
      },
    },
    /** Issue 15: deltas from the previous format-2 release and compressed files, named by the release. */
    encoding: {
      entry: { type: 'announce', params: 'encoding' },
      invoke: {
        src: 'encodeDeltas',
        input: ({ context }) => ({ head2: context.chain!.head2, tree: context.tree! }),
        onDone: { target: 'signing2', actions: assign({ deltas: ({ event }) => event.output, deltaWarning: undefined }) },
        onError: {
          target: 'signing2',
          actions: assign({ deltas: undefined, deltaWarning: ({ event }) => `no deltas for this release (clients fetch changed files whole): ${(event.error as Error)?.message ?? String(event.error)}` }),
        },
      },
    },
    signing2: {
      entry: { type: 'announce', params: 'signing' },
      invoke: {
        src: 'sign2',
        input: ({ context }) => ({
          rev: nextRev(context.chain!), head2: context.chain!.head2, tree: context.tree!, claim: context.claim!, deltas: context.deltas?.indexes ?? [],
          packs: [...(context.uploaded?.packs ?? []), ...(context.deltas?.packs ?? [])],
          v1: (context.claim?.formats ?? [1]).includes(1) ? context.mine : undefined,
        }),
        onDone: { target: 'appending2', actions: assign({ mine2: ({ event }) => event.output }) },
        onError: { target: 'failed', actions: { type: 'fail', params: ({ event }) => failure('signing', event.error) } },
      },
    },
    appending2: {
      entry: [{ type: 'announce', params: 'appending' }, assign({ revAttempts: ({ context }) => context.revAttempts + 1 })],
      invoke: {
        src: 'append2',
        input: ({ context }) => ({ release: context.mine2! }),
        onDone: [
          { guard: 'wants1', target: 'appending', actions: assign(({ context, event }) => ({ release2: { ...context.mine2!, seq: event.output.seq }, appended: true })) },
          { target: 'done', actions: assign(({ context, event }) => ({ release2: { ...context.mine2!, seq: event.output.seq }, appended: true })) },
        ],
        onError: appendFailed('format-2 release stream'),
      },
    },
    appending: {
      entry: [{ type: 'announce', params: 'appending' }, assign({ revAttempts: ({ context }) => context.revAttempts + 1 })],
      invoke: {
        src: 'append',
        input: ({ context }) => ({ release: context.mine!, lastSeq: context.chain!.lastSeq }),
        onDone: { target: 'feeding', actions: assign(({ context, event }) => ({ release: context.mine!, seq: event.output.seq, appended: true })) },
        onError: appendFailed('release stream'),
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
    ...(context.release2 ? { release2: context.release2 } : {}),
    ...(context.deltas ? { deltas: context.deltas } : {}),
    ...(context.deltaWarning ? { deltaWarning: context.deltaWarning } : {}),
    appended: context.appended,
    skipped: context.skipped,
    ...(context.feed ? { feed: context.feed } : {}),
    ...(context.failure ? { failure: context.failure } : {}),
  }),
})
