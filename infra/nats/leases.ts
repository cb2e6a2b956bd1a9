// Issue 11 item 8: a prune never deletes a blob a publish relies on. A publish skips uploading
// a blob the object store already holds; a prune that deleted that blob between the check and
// the release append would leave a release pointing at nothing. The two exclude each other
// through leases in one KV bucket, each side writing its own lease and then reading the other's
// (Dekker's order: of two that overlap, at least one sees the other):
//   publish: put `publish.<identity>.<id>`, then read `prune`; a prune there → withdraw, wait
//            until it is gone, start again. Else hold the lease from the blob check to the append.
//   prune:   create `prune` (one at a time), then list `publish.*` and wait until none is left.
// A prune never waits while holding up a publish that waits for it, so neither can deadlock.
// Every read goes to the stream leader (no direct gets, which a replica may answer stale).
// Leases expire LEASE_TTL_MS after their last renewal, so a killed holder blocks nobody for long.
// Every call is retried like the publisher's others: during a node loss leaders are re-elected.
import { randomBytes } from 'node:crypto'
import { jetstreamManager } from '@nats-io/jetstream'
import { Kvm, type KV, type KvEntry } from '@nats-io/kv'
import type { NatsConnection } from '@nats-io/transport-node'
import { UpswarmError, errorMessage } from '../errors.ts'
import { identityOf } from './identity.ts'
import { withRetry } from './retry.ts'
import { LEASE_BUCKET, PRUNE_LEASE_KEY, PUBLISH_LEASES, publishLeaseKey } from './names.ts'

/** A lease not renewed for this long is gone (the bucket's max age). */
export const LEASE_TTL_MS = 60_000
/** How often a holder renews its lease. */
export const LEASE_RENEW_MS = 15_000
/** How often a waiting side looks again. */
const POLL_MS = 500

export interface LeaseHolder {
  /** The NATS identity that holds it. */
  identity: string
  /** What for: the product published, or the prune's target. */
  what: string
  /** ISO 8601. */
  since: string
}

export interface Lease {
  readonly key: string
  /** True while the lease was never lost (renewed in time, not taken over): what it guards still holds. */
  held(): Promise<boolean>
  release(): Promise<void>
}

const KV_STREAM = `KV_${LEASE_BUCKET}`

/** Creates the lease bucket (admin, `up`): leader reads only, entries expire unless renewed. */
export async function ensureLeaseBucket(nc: NatsConnection, replicas: number): Promise<void> {
  await new Kvm(nc).create(LEASE_BUCKET, { replicas, history: 1, ttl: LEASE_TTL_MS, allow_direct: false })
}

async function openLeases(nc: NatsConnection): Promise<KV> {
  try {
    return await withRetry(() => new Kvm(nc).open(LEASE_BUCKET, { allow_direct: false }), { attempts: 30 })
  } catch (err) {
    throw new UpswarmError('UPSWARM_E_CONFIG',
      `cannot open the lease bucket ${LEASE_BUCKET} that keeps publishes and prunes apart: ${errorMessage(err)}. ` +
      'Restart `upswarm up` (it creates it), or create the resources once with an admin identity', { cause: err })
  }
}

const live = (e: KvEntry | null): e is KvEntry => e !== null && e.operation === 'PUT'

function tokenOf(e: KvEntry): string | undefined {
  try {
    return e.json<{ token?: string }>().token
  } catch {
    return undefined
  }
}

/** A lease's value: who holds it and why, and a token no other holder has. */
const leaseValue = (nc: NatsConnection, what: string): string =>
  JSON.stringify({ identity: identityOf(nc), what, since: new Date().toISOString(), token: randomBytes(12).toString('hex') })

function holderOf(e: KvEntry): LeaseHolder {
  try {
    const { identity, what, since } = e.json<LeaseHolder>()
    return { identity, what, since }
  } catch {
    return { identity: 'unknown', what: e.string().slice(0, 120), since: e.created.toISOString() }
  }
}

const waitMs = (ms: number, signal?: AbortSignal): Promise<void> => new Promise((resolve, reject) => {
  const t = setTimeout(resolve, ms)
  signal?.addEventListener('abort', () => {
    clearTimeout(t)
    reject(signal.reason)
  }, { once: true })
})

/** Keeps a lease alive until released; `held` turns false once it is found gone or someone else's. */
function holdLease(kv: KV, key: string, value: string): Lease {
  const token = (JSON.parse(value) as { token: string }).token
  let lost = false
  let released = false
  const ours = async (): Promise<boolean> => {
    const e = await withRetry(() => kv.get(key), { attempts: 30 })
    return live(e) && tokenOf(e) === token
  }
  const renew = async (): Promise<void> => {
    try {
      // Only while it is still ours: a lease that expired may have been taken by someone else.
      if (await ours()) await kv.put(key, value)
      else lost = true
    } catch {
      // Unreachable for now: the next tick tries again, `held` looks for itself.
    }
  }
  const timer = setInterval(() => void renew(), LEASE_RENEW_MS)
  timer.unref()
  return {
    key,
    async held() {
      return !lost && !released && (await ours())
    },
    async release() {
      if (released) return
      released = true
      clearInterval(timer)
      // Not released (a lost connection): it expires within LEASE_TTL_MS.
      await withRetry(() => kv.delete(key), { attempts: 10 }).catch(() => {})
    },
  }
}

/**
 * The publish side: a lease held while the publish relies on blobs the object store already
 * holds. Waits while a prune runs (`onWaiting` says whose), then takes it.
 */
export async function acquirePublishLease(nc: NatsConnection, what: string, opts: { onWaiting?: (prune: LeaseHolder) => void; signal?: AbortSignal } = {}): Promise<Lease> {
  const kv = await openLeases(nc)
  const key = publishLeaseKey(identityOf(nc), randomBytes(8).toString('hex'))
  const value = leaseValue(nc, what)
  const pruneLease = (): Promise<KvEntry | null> => withRetry(() => kv.get(PRUNE_LEASE_KEY), { attempts: 30 })
  for (;;) {
    await withRetry(() => kv.put(key, value), { attempts: 30 })
    const prune = await pruneLease()
    if (!live(prune)) return holdLease(kv, key, value)
    // Withdraw first, so the prune does not wait for us while we wait for it.
    await withRetry(() => kv.delete(key), { attempts: 30 })
    opts.onWaiting?.(holderOf(prune))
    while (live(await pruneLease())) await waitMs(POLL_MS, opts.signal)
  }
}

/** The publishes holding a lease now. */
export async function publishLeases(nc: NatsConnection, kv?: KV): Promise<LeaseHolder[]> {
  const bucket = kv ?? (await openLeases(nc))
  const jsm = await jetstreamManager(nc)
  const filter = `$KV.${LEASE_BUCKET}.${PUBLISH_LEASES}`
  const { state } = await jsm.streams.info(KV_STREAM, { subjects_filter: filter })
  const out: LeaseHolder[] = []
  for (const subject of Object.keys(state.subjects ?? {})) {
    const e = await bucket.get(subject.slice(`$KV.${LEASE_BUCKET}.`.length))
    if (live(e)) out.push(holderOf(e))
  }
  return out
}

/**
 * The prune side: one prune at a time; once it holds the `prune` lease, waits until no publish
 * holds one (new publishes wait for it meanwhile). Gives up after `maxWaitMs`, naming them.
 */
export async function acquirePruneLease(nc: NatsConnection, what: string, opts: { maxWaitMs: number; onWaiting?: (publishes: LeaseHolder[]) => void; signal?: AbortSignal }): Promise<Lease> {
  const kv = await openLeases(nc)
  const value = leaseValue(nc, what)
  try {
    await kv.create(PRUNE_LEASE_KEY, value)
  } catch (err) {
    const other = await kv.get(PRUNE_LEASE_KEY)
    if (!live(other)) throw err
    const h = holderOf(other)
    throw new UpswarmError('UPSWARM_E_CONFLICT', `another prune is running (${h.what}, by ${h.identity} since ${h.since}); wait for it to finish, then run this one again`, { cause: err })
  }
  const lease = holdLease(kv, PRUNE_LEASE_KEY, value)
  try {
    const started = Date.now()
    let told = ''
    for (;;) {
      const publishes = await publishLeases(nc, kv)
      if (publishes.length === 0) return lease
      const now = publishes.map((p) => `${p.identity}:${p.what}:${p.since}`).sort().join(',')
      if (now !== told) opts.onWaiting?.(publishes)
      told = now
      if (Date.now() - started >= opts.maxWaitMs) {
        throw new UpswarmError('UPSWARM_E_CONFLICT',
          `${publishes.length} publish(es) still rely on blobs of the object store after ${Math.round(opts.maxWaitMs / 1000)} s: ` +
          `${publishes.map((p) => `${p.what} by ${p.identity} since ${p.since}`).join('; ')}; nothing was pruned. Run the prune again once they are done`)
      }
      await waitMs(POLL_MS, opts.signal)
    }
  } catch (err) {
    await lease.release()
    throw err
  }
}
