// The notary (issue 10 item 7; docs/formats.md §1.4, §1.8; TUF's timestamp role): holds the
// root's `fresh` key, never a publish key. For every product of the newest root it finds the
// newest release that verifies under that root and signs "as of now, the newest release of P is
// rN, whose manifest hashes to H; the newest root is version V", appended to UPSWARM_FRESH within
// a second of every new release or root, and again every interval, so a client can tell a frozen
// view from a quiet product (R-DHT-2: a stale view warns, never blocks).
import { join } from 'node:path'
import { mkdir } from 'node:fs/promises'
import type { NatsConnection, Subscription } from '@nats-io/transport-node'
import { errorMessage } from '../../infra/errors.ts'
import { keyIdOf } from '../../infra/formats/envelope.ts'
import { signFresh, verifyFresh } from '../../infra/formats/fresh.ts'
import { appendFresh, readFresh, readRoots } from '../../infra/formats/meta-stream.ts'
import { keyVerdict, productKeys, type Root } from '../../infra/formats/root.ts'
import { TrustStore } from '../../infra/formats/trust-store.ts'
import { SIGNED_ROOT_SUBJECT } from '../../infra/nats/names.ts'
import type { PublisherKey } from '../../infra/release/keys.ts'
import { followReleases, readReleaseChain, type FollowHandle } from '../../infra/release/release-log.ts'
import { createActor, type ActorOptions, type AnyActorLogic } from 'xstate'
import { notaryMachine } from '../../machines/notary.machine.ts'
import { DEFAULT_MAX_FAILURES, startHalter, type Halter } from './halter.ts'

export const DEFAULT_INTERVAL_S = 3600
const STREAM_SEQUENCE_HEADER = 'Nats-Sequence'

export interface NotaryOptions {
  nc: NatsConnection
  /** The fresh key: its public key must be in the newest root's `fresh` role. */
  freshKey: PublisherKey
  /** The root to pin (a file's text): the notary follows newer versions from UPSWARM_META. */
  rootText: string
  rootWhere?: string
  dataDir: string
  /** Re-sign every product this often (default 3600 s). */
  intervalS?: number
  /** Statement lifetime; capped by the root's fresh.maxLifetime. */
  lifetimeS?: number
  /**
   * Issue 16 item 2: the root's `halt` key of the products. With it the notary halts a revision
   * that failed its health check on `maxFailures` distinct clients (default 3).
   */
  haltKey?: PublisherKey
  maxFailures?: number
  /** One structured event per line (the CLI prints JSON lines). */
  log?: (event: Record<string, unknown>) => void
  /** An XState inspection observer for the notary's actor (live inspection, issue 12). */
  inspect?: ActorOptions<AnyActorLogic>['inspect']
}

export interface SignedStatement {
  product: string
  rev: number
  release?: string
  root: number
  issued: string
  seq: number
}

export interface Notary {
  readonly store: TrustStore
  /** Resolves when every product has been signed once under the current root. */
  ready(): Promise<void>
  onSigned(listener: (s: SignedStatement) => void): () => void
  /** The failure counter, when the notary holds a halt key. */
  readonly halter: Halter | undefined
  close(): Promise<void>
}

/** The newest release of `product` that `root` vouches for: current keys, or a retired key up to its last revision. */
export async function newestVerified(nc: NatsConnection, root: Root, product: string, log: (e: Record<string, unknown>) => void = () => {}): Promise<{ rev: number; release?: string }> {
  const keys = productKeys(root, product)
  const valid = (publicKey: string, rev: number, sha: string): boolean => {
    const v = keyVerdict(root, product, publicKey, rev)
    if (!v.ok) return false
    return !(v.retired && rev === v.retired.lastRev && v.retired.lastRelease && v.retired.lastRelease !== sha)
  }
  const chain = await readReleaseChain(nc, product, (pk) => keys.current.includes(pk) || keys.retired.includes(pk))
  for (const s of chain.skipped) log({ event: 'skipped', product, seq: s.seq, kind: s.kind, reason: s.reason })
  const head = chain.head
  if (head && valid(head.release.publicKey, head.release.manifest.rev, head.manifestSha256)) {
    return { rev: head.release.manifest.rev, release: head.manifestSha256 }
  }
  // The newest message is a retired key's after its last revision (revoked): the current keys decide.
  const current = head ? (await readReleaseChain(nc, product, (pk) => keys.current.includes(pk))).head : null
  const fromCurrent = current && valid(current.release.publicKey, current.release.manifest.rev, current.manifestSha256)
    ? { rev: current.release.manifest.rev, release: current.manifestSha256 } : undefined
  const anchors = (root.products[product]?.retired ?? []).filter((r) => r.lastRelease).sort((a, b) => b.lastRev - a.lastRev)
  const fromRetired = anchors[0] ? { rev: anchors[0].lastRev, release: anchors[0].lastRelease! } : undefined
  if (fromCurrent && (!fromRetired || fromCurrent.rev >= fromRetired.rev)) return fromCurrent
  return fromRetired ?? { rev: 0 }
}

export async function startNotary(opts: NotaryOptions): Promise<Notary> {
  const { nc, freshKey } = opts
  const log = opts.log ?? (() => {})
  const intervalS = opts.intervalS ?? DEFAULT_INTERVAL_S
  await mkdir(opts.dataDir, { recursive: true })
  const store = await TrustStore.open(join(opts.dataDir, 'trust.json'), opts.dataDir)
  await store.pin(opts.rootText, opts.rootWhere ?? 'the pinned root')
  const freshId = keyIdOf(freshKey.publicKey)
  const listeners = new Set<(s: SignedStatement) => void>()
  const followers = new Map<string, FollowHandle>()
  const queues = new Map<string, { running: Promise<void>; again: boolean; busy: boolean }>()
  const lastIssued = new Map<string, number>()
  let closing = false

  const signOne = async (product: string): Promise<void> => {
    const root = store.root!
    if (!root.products[product]) return
    if (!root.roles.fresh.keys.includes(freshId)) {
      log({ event: 'error', product, error: `this notary's key ${freshKey.publicKey.slice(0, 16)}… is not the fresh key of root version ${root.version}; signing nothing` })
      return
    }
    const newest = await newestVerified(nc, root, product, log)
    if (!lastIssued.has(product)) {
      // A restarted notary: its statement must be newer than the one on the stream (clients refuse older).
      const held = await readFresh(nc, product).catch(() => undefined)
      if (held) {
        try {
          lastIssued.set(product, Date.parse(verifyFresh(held, root, 'UPSWARM_FRESH').fresh.issued))
        } catch {
          // Not ours (an older fresh key, junk): nothing to be newer than.
        }
      }
    }
    const issuedMs = Math.max(Math.floor(Date.now() / 1000) * 1000, (lastIssued.get(product) ?? 0) + 1000)
    const lifetimeS = Math.min(opts.lifetimeS ?? Number.MAX_SAFE_INTEGER, root.roles.fresh.maxLifetime ?? 6 * 3600)
    const text = signFresh({ product, rev: newest.rev, ...(newest.release ? { release: newest.release } : {}), root: root.version, issuedMs, lifetimeS }, freshKey)
    const { seq } = await appendFresh(nc, text.toString('utf8'))
    lastIssued.set(product, issuedMs)
    const statement: SignedStatement = {
      product, rev: newest.rev, ...(newest.release ? { release: newest.release } : {}), root: root.version, issued: new Date(issuedMs).toISOString(), seq,
    }
    log({ event: 'fresh', ...statement })
    for (const l of listeners) l(statement)
  }

  /** One signing per product at a time; a request while one runs asks for one more run after it. */
  const schedule = (product: string): Promise<void> => {
    if (closing) return Promise.resolve()
    const q = queues.get(product) ?? { running: Promise.resolve(), again: false, busy: false }
    queues.set(product, q)
    if (q.busy) {
      q.again = true
      return q.running
    }
    q.busy = true
    q.running = (async () => {
      do {
        q.again = false
        await signOne(product).catch((err: unknown) => log({ event: 'error', product, error: errorMessage(err) }))
      } while (q.again && !closing)
      q.busy = false
    })()
    return q.running
  }

  const signAll = (): Promise<void> => Promise.all(Object.keys(store.root!.products).map(schedule)).then(() => {})

  const syncFollowers = async (): Promise<void> => {
    const products = store.root!.products
    for (const [product, f] of followers) {
      if (!products[product]) {
        followers.delete(product)
        await f.stop()
      }
    }
    for (const product of Object.keys(products)) {
      if (followers.has(product) || closing) continue
      const f = await followReleases(nc, product, () => { void schedule(product) })
      followers.set(product, f)
      f.closed.catch((err: unknown) => log({ event: 'error', product, error: `following releases: ${errorMessage(err)}` }))
    }
  }

  /** A root arrived (republished by the stream) or the interval passed: take what extends the chain. */
  const takeRoots = async (republished?: Uint8Array): Promise<void> => {
    const before = store.version
    try {
      const outcome = republished ? await store.acceptRoot(republished, 'UPSWARM_META') : 'gap'
      if (outcome === 'gap') {
        for (const text of await readRoots(nc, store.version + 1, (s) => log({ event: 'skipped', subject: 'root', seq: s.seq, reason: s.reason }))) {
          await store.acceptRoot(text, 'UPSWARM_META').catch((err: unknown) => log({ event: 'error', error: `root refused: ${errorMessage(err)}` }))
        }
      }
    } catch (err) {
      log({ event: 'error', error: `root refused: ${errorMessage(err)}` })
    }
    if (store.version > before) {
      log({ event: 'root', version: store.version })
      await syncFollowers()
      await signAll()
    }
  }

  let rootQueue = Promise.resolve()
  const rootSub: Subscription = nc.subscribe(SIGNED_ROOT_SUBJECT, {
    callback: (err, msg) => {
      if (err || !msg.headers?.get(STREAM_SEQUENCE_HEADER)) return
      rootQueue = rootQueue.then(() => takeRoots(msg.data))
    },
  })
  await nc.flush()
  await takeRoots()
  await syncFollowers()
  const first = signAll()
  const halter = opts.haltKey
    ? await startHalter({ nc, store, haltKey: opts.haltKey, maxFailures: opts.maxFailures ?? DEFAULT_MAX_FAILURES, log })
    : undefined
  // The interval is the notary statechart's clock (machines/notary.machine.ts), not a timer here.
  const actor = createActor(notaryMachine.provide({
    actions: {
      resignAll: () => {
        rootQueue = rootQueue.then(() => takeRoots()).then(signAll)
      },
    },
  }), { input: { intervalMs: intervalS * 1000 }, ...(opts.inspect ? { inspect: opts.inspect } : {}) })
  actor.start()
  log({ event: 'started', root: store.version, products: Object.keys(store.root!.products).length, intervalS })

  return {
    store,
    halter,
    ready: () => first,
    onSigned(listener) {
      listeners.add(listener)
      return () => listeners.delete(listener)
    },
    async close() {
      closing = true
      actor.send({ type: 'stop' })
      rootSub.unsubscribe()
      await halter?.close()
      await rootQueue
      await Promise.all([...followers.values()].map((f) => f.stop()))
      await Promise.all([...queues.values()].map((q) => q.running))
    },
  }
}
