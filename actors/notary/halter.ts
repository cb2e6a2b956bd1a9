// Issue 16 item 2: a release that fails its health check on enough distinct clients halts itself.
// The notary (docs/formats.md §1.8: it holds the `halt` key, which can sign nothing but a halt)
// counts the health alerts clients send (`{"type":"health", rev, …}` on
// `upswarm.alert.<product>.<client>`) per revision and per sending identity — the subject's last
// token, which the cluster's permissions bind to the sender, so one machine failing again and
// again counts once — and at `maxFailures` distinct identities appends a signed "halted" rollout
// statement; `--auto` clients on that revision then go back to the newest one not halted.
import type { NatsConnection, Subscription } from '@nats-io/transport-node'
import { errorMessage, isUpswarmError } from '../../infra/errors.ts'
import { keyIdOf } from '../../infra/formats/envelope.ts'
import { decidingStatements, signRollout } from '../../infra/formats/rollout.ts'
import { appendRollout, readRollouts, releaseHashOf } from '../../infra/formats/rollout-stream.ts'
import type { TrustStore } from '../../infra/formats/trust-store.ts'
import { readAlerts } from '../../infra/nats/alert-reader.ts'
import { ALERTED_SUBJECTS } from '../../infra/nats/names.ts'
import type { PublisherKey } from '../../infra/release/keys.ts'

export const DEFAULT_MAX_FAILURES = 3
/** Alerts older than this are not counted when the notary starts (a day of history). */
const LOOKBACK_MS = 24 * 3600 * 1000

export interface HalterOptions {
  nc: NatsConnection
  store: TrustStore
  haltKey: PublisherKey
  maxFailures: number
  log: (event: Record<string, unknown>) => void
}

export interface Halter {
  /** Distinct identities that reported revision `rev` of `product` failing its health check. */
  failures(product: string, rev: number): number
  /** Called after each health alert is counted (and, at the threshold, after the halt is appended). */
  onCounted(listener: (e: { product: string; rev: number; from: string; failures: number; halted: boolean }) => void): () => void
  close(): Promise<void>
}

export async function startHalter(o: HalterOptions): Promise<Halter> {
  const counts = new Map<string, Set<string>>()
  const halted = new Set<string>()
  const listeners = new Set<Parameters<Halter['onCounted']>[0]>()
  let queue = Promise.resolve()

  /** Appends the halt unless the revision's deciding statement is one already. */
  const halt = async (product: string, rev: number, failures: number): Promise<void> => {
    const root = o.store.root
    const role = root?.products[product]?.halt
    if (!root || !role?.keys.includes(keyIdOf(o.haltKey.publicKey))) {
      o.log({ event: 'error', product, rev, error: `r${rev} failed its health check on ${failures} clients, but this notary's halt key is not the halt key of product ${product} in root version ${root?.version}; not halting` })
      return
    }
    for (let attempt = 1; ; attempt++) {
      const scan = await readRollouts(o.nc, product, root, true)
      const all = scan.statements.map((s) => s.rollout)
      const previous = decidingStatements(all).get(rev)
      if (previous?.state === 'halted') return
      const release = previous?.release ?? (await releaseHashOf(o.nc, product, rev))
      if (!release) return
      const seq = Math.max(0, ...all.map((s) => s.seq)) + 1
      const bytes = signRollout({ product, seq, rev, release, state: 'halted', percent: previous?.percent ?? 0, rings: previous?.rings ?? [], issuedMs: Date.now() }, [o.haltKey])
      try {
        const streamSeq = await appendRollout(o.nc, product, bytes, scan.lastSeq)
        o.log({ event: 'halt', product, rev, seq, streamSeq, failures })
        return
      } catch (err) {
        // Someone else appended meanwhile: read again and decide again.
        if (!isUpswarmError(err, 'UPSWARM_E_CONFLICT') || attempt >= 5) throw err
      }
    }
  }

  const count = (product: string, from: string, body: unknown): void => {
    const a = body as { type?: unknown; rev?: unknown } | null
    if (a?.type !== 'health' || typeof a.rev !== 'number' || !Number.isInteger(a.rev) || a.rev < 1) return
    const rev = a.rev
    if (!o.store.root?.products[product]) return
    const key = `${product}:${rev}`
    const ids = counts.get(key) ?? new Set<string>()
    counts.set(key, ids)
    ids.add(from)
    queue = queue.then(async () => {
      const reached = ids.size >= o.maxFailures && !halted.has(key)
      if (reached) {
        halted.add(key)
        await halt(product, rev, ids.size).catch((err: unknown) => {
          halted.delete(key)
          o.log({ event: 'error', product, rev, error: `halting r${rev}: ${errorMessage(err)}` })
        })
      }
      for (const l of listeners) l({ product, rev, from, failures: ids.size, halted: halted.has(key) })
    })
  }

  // Live alerts first, then the stored ones of the last day: an identity counted twice counts once.
  // What the alert stream stored (its republish): the sites' alerts, which the core sources, too.
  const sub: Subscription = o.nc.subscribe(ALERTED_SUBJECTS, {
    callback: (err, msg) => {
      if (err) return
      const [, , product, from] = msg.subject.split('.')
      let body: unknown
      try {
        body = msg.json()
      } catch {
        return
      }
      if (product && from) count(product, from, body)
    },
  })
  await o.nc.flush()
  await readAlerts(o.nc, { sinceMs: Date.now() - LOOKBACK_MS }, (a) => count(a.product, a.from, a.body))
  await queue

  return {
    failures: (product, rev) => counts.get(`${product}:${rev}`)?.size ?? 0,
    onCounted(listener) {
      listeners.add(listener)
      return () => listeners.delete(listener)
    },
    async close() {
      sub.unsubscribe()
      await queue
    },
  }
}
