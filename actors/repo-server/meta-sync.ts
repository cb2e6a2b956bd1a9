// A repository server's format-2 side (docs/formats.md §5 step 5, §1.8; issue 13 item 3): its
// durable consumer `server-<id>-meta` on UPSWARM_META feeds machines/meta-sync.machine.ts; each
// format-2 release is verified (the root of the trust file, or the product's pinned keys), every
// node its tree reaches and every whole-file blob (the units, §1.7) is copied from the object store
// and checked against its hash, and only then is the release kept and the message acknowledged.
// It also answers `meta` and `nodes` on the server's repo service.
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, type JsMsg } from '@nats-io/jetstream'
import { Readable } from 'node:stream'
import type { ObjectStore } from '@nats-io/obj'
import type { NatsConnection } from '@nats-io/transport-node'
import { createActor, fromPromise, type Actor } from 'xstate'
import { UpswarmError, errorMessage } from '../../infra/errors.ts'
import { mark } from '../../infra/timings.ts'
import { keyIdOf, validSigners } from '../../infra/formats/envelope.ts'
import { readFresh, readRoots } from '../../infra/formats/meta-stream.ts'
import { encodeNodesReply, replyBudget, type MetaRequest, type NodesRequest } from '../../infra/formats/meta-wire.ts'
import { checkReleaseChain, parseRelease, verifyRelease, type SignedRelease2 } from '../../infra/formats/release.ts'
import { getNodeObject, walkReachable, withObjectStream } from '../../infra/formats/tree-objects.ts'
import { checkedNode } from '../../infra/formats/tree-builder.ts'
import { inspection } from '../../infra/inspect/nats-inspector.ts'
import { META_STREAM, RELEASE2_SUBJECTS, serverMetaConsumer } from '../../infra/nats/names.ts'
import type { TrustStore } from '../../infra/release/trust.ts'
import type { Root } from '../../infra/formats/root.ts'
import type { BlobStore } from '../../infra/store/blob-store.ts'
import { metaSyncMachine, type MetaOutcome, type PendingMeta } from '../../machines/meta-sync.machine.ts'
import { Meta2Store } from './meta2-store.ts'
import { eachLimited } from '../../infra/parallel.ts'

/** How long one pull waits for a format-2 release. */
const POLL_MS = 5000

export interface MetaSyncOptions {
  nc: NatsConnection
  id: string
  dataDir: string
  blobs: BlobStore
  os: ObjectStore
  trust: TrustStore
  /** Copies one whole-file blob from the object store into the server's store, verified (the format-1 sync's copy). */
  copyBlob: (sha256: string, size: number, where: string, signal: AbortSignal) => Promise<void>
  /** Issue 15: the newest revision of `product` an operator pruned (PRUNE_STREAM), 0 for none. */
  prunedThrough?: (product: string) => Promise<number>
  retryMs?: number
  log: (msg: string) => void
}

export interface MetaSync {
  store: Meta2Store
  actor: Actor<typeof metaSyncMachine>
  /** `meta` of the repo service: a held document as received. */
  meta(req: MetaRequest): Promise<Uint8Array>
  /** `nodes` of the repo service: held nodes by hash, ≤ NODES_MAX_REPLY bytes, the rest named as left. */
  nodes(req: NodesRequest): Promise<Uint8Array>
  close(): void
}

export async function startMetaSync(opts: MetaSyncOptions): Promise<MetaSync> {
  const { nc, id, blobs, os, log } = opts
  const store = new Meta2Store(opts.dataDir, blobs)
  await store.open()
  const jsm = await jetstreamManager(nc)
  const js = jetstream(nc)
  const durable = serverMetaConsumer(id)
  const inHand = new Map<number, JsMsg>()

  /** The release's signatures: under the trust file's root (format 3), else by the product's pinned keys. */
  async function verify(text: string, signed: SignedRelease2, root: Root | undefined, where: string): Promise<SignedRelease2> {
    if (root) return verifyRelease(text, root, where)
    const keys = await opts.trust.keysFor(signed.release.product)
    if (!keys) throw refused(`product ${signed.release.product} is not pinned in trust file ${opts.trust.file}`)
    const defs = Object.fromEntries(keys.map((k) => [keyIdOf(k), { alg: 'ed25519', public: k }]))
    if (validSigners(signed.env, defs, Object.keys(defs)).size < 1) throw refused(`it is not signed by a key the trust file pins for ${signed.release.product}`)
    return signed
  }

  /** One pack from the object store into the server's pack store (PackStore.add verifies it as it streams). */
  const copyPack = (pack: string, where: string, signal: AbortSignal): Promise<unknown> =>
    withObjectStream(os, pack, `pack ${pack} is not in the object store yet`, (source) => blobs.packs!.add(pack, source, where), signal, `server ${id} is stopping`)

  async function sync(release: PendingMeta, signal: AbortSignal): Promise<MetaOutcome> {
    const msg = inHand.get(release.seq)
    if (!msg) throw new UpswarmError('UPSWARM_E_IO', `meta message ${release.seq} is no longer in hand`)
    const where = `${META_STREAM} seq ${release.seq}`
    const text = Buffer.from(msg.data).toString('utf8')
    let signed: SignedRelease2
    try {
      signed = parseRelease(text, where)
    } catch (err) {
      return { kept: false, reason: errorMessage(err) }
    }
    // Signed under a root this server has not seen yet: tried again while the root stream catches up.
    const root = await opts.trust.rootFor(signed.release.root)
    if (root && signed.release.root > root.version) {
      throw new UpswarmError('UPSWARM_E_SIGNATURE', `${where} was signed under root version ${signed.release.root}; this server holds version ${root.version}`)
    }
    try {
      signed = await verify(text, signed, root, where)
    } catch (err) {
      return { kept: false, reason: errorMessage(err) }
    }
    const { product, rev, tree, stats } = signed.release
    const held = store.release(product, rev)
    if (held) return held.signed.id === signed.id ? { kept: true } : { kept: false, reason: `${where}: revision ${rev} of ${product} is held already as release ${held.signed.id}` }
    const newest = store.release(product)
    if (newest && rev > newest.signed.release.rev) {
      try {
        checkReleaseChain(newest.signed, signed, where)
      } catch (err) {
        return { kept: false, reason: errorMessage(err) }
      }
    }
    // Issue 15: a revision an operator pruned is kept as its document only (the chain stays
    // verifiable); its nodes and blobs may be gone from the object store.
    if (store.isPruned(product, rev) || rev <= ((await opts.prunedThrough?.(product)) ?? 0)) {
      await store.record(release.seq, { text, signed }, [])
      return { kept: true }
    }
    // Every node, from the server's own store when it holds it (a previous release), else from
    // the object store, each checked against its hash before it is kept.
    const node = async (hash: string, what = ''): Promise<Uint8Array> => {
      signal.throwIfAborted()
      if (await blobs.has(hash)) return store.readNode(hash)
      const bytes = await getNodeObject(os, hash)
      await blobs.put(hash, Readable.from([bytes]), `object store (meta seq ${release.seq}${what})`, bytes.length)
      return bytes
    }
    // Issue 13 item 4: the packs holding the release's small units, each streamed once and verified
    // whole (its header against its id, every unit against its name) before a byte of it is kept.
    if (signed.release.packs) {
      const list = checkedNode(signed.release.packs, await node(signed.release.packs, ', pack list'), false, `pack list of r${rev} of ${product}`)
      if (list.type !== 'packList') return { kept: false, reason: `${where}: release r${rev} of ${product} names ${signed.release.packs} as its pack list; it is a ${list.type} node` }
      // Two packs at a time: one stream from the object store leaves the disk and the cluster idle between chunks.
      const todo = list.packs.filter((ref) => blobs.packs && !blobs.packs.hasPack(ref.pack))
      await eachLimited(todo, 2, async (ref) => {
        signal.throwIfAborted()
        await copyPack(ref.pack, `object store (meta seq ${release.seq}, pack ${ref.pack.slice(0, 16)}…)`, signal)
      })
    }
    mark(`server ${id}: packs of r${rev} copied`)
    const walked = await walkReachable(tree, (hash) => node(hash))
    mark(`server ${id}: tree of r${rev} walked`)
    const files = walked.entries.filter((e) => e.kind === 'file')
    const bytes = files.reduce((n, e) => n + (e.kind === 'file' ? e.size : 0), 0)
    if (files.length !== stats.files || bytes !== stats.bytes || walked.nodes.size !== stats.nodes) {
      return { kept: false, reason: `${where}: release r${rev} of ${product} says ${stats.files} files, ${stats.bytes} bytes, ${stats.nodes} nodes; its tree has ${files.length}, ${bytes}, ${walked.nodes.size}` }
    }
    // Units (§1.7): a small file's is its whole-file blob; a large file's chunks are ranges of it.
    for (const e of files) {
      if (e.kind !== 'file' || (await blobs.has(e.sha256))) continue
      signal.throwIfAborted()
      await opts.copyBlob(e.sha256, e.size, `object store (meta seq ${release.seq}, ${e.path})`, signal)
    }
    // Issue 15: the delta-index nodes the release names, and every delta they list (objects named
    // by their SHA-256, copied and checked like blobs), so a client can ask this server for them.
    const indexes: string[] = []
    for (const hash of signed.release.deltas ?? []) {
      const index = checkedNode(hash, await node(hash, ', delta index'), false, `delta index of r${rev} of ${product}`)
      if (index.type !== 'deltaIndex') return { kept: false, reason: `${where}: release r${rev} of ${product} names ${hash} as a delta index; it is a ${index.type} node` }
      for (const d of index.deltas) {
        if (await blobs.has(d.delta)) continue
        signal.throwIfAborted()
        await opts.copyBlob(d.delta, d.length, `object store (meta seq ${release.seq}, delta for ${d.target.slice(0, 16)}…)`, signal)
      }
      indexes.push(hash)
    }
    mark(`server ${id}: units and deltas of r${rev} checked`)
    await store.record(release.seq, { text, signed }, [...walked.nodes.keys(), ...indexes])
    return { kept: true }
  }

  const machine = metaSyncMachine.provide({
    actors: {
      // A server (re)starts from what its own disk holds: a wiped server copies every release again.
      prepareConsumer: fromPromise(async () => {
        const config = {
          durable_name: durable,
          filter_subject: RELEASE2_SUBJECTS,
          ack_policy: AckPolicy.Explicit,
          max_ack_pending: 1,
          ack_wait: 120_000_000_000,
          deliver_policy: DeliverPolicy.StartSequence,
          opt_start_seq: store.lastSeq + 1,
        }
        const existing = await jsm.consumers.info(META_STREAM, durable).catch(() => null)
        if (existing && existing.ack_floor.stream_seq !== store.lastSeq) await jsm.consumers.delete(META_STREAM, durable)
        if (!existing || existing.ack_floor.stream_seq !== store.lastSeq) await jsm.consumers.add(META_STREAM, config)
      }),
      nextRelease: fromPromise(async (): Promise<PendingMeta | null> => {
        const consumer = await js.consumers.get(META_STREAM, durable)
        const msg = await consumer.next({ expires: POLL_MS })
        if (!msg) return null
        inHand.set(msg.seq, msg)
        try {
          const { product, rev } = parseRelease(msg.data, `${META_STREAM} seq ${msg.seq}`).release
          return { seq: msg.seq, product, rev }
        } catch {
          return { seq: msg.seq, product: '', rev: 0 } // refused by the sync, with the reason
        }
      }),
      syncRelease: fromPromise(({ input, signal }) => sync(input.release, signal)),
      acknowledge: fromPromise(async ({ input: { release, outcome } }) => {
        const msg = inHand.get(release.seq)
        inHand.delete(release.seq)
        if (!outcome.kept) await store.passed(release.seq)
        if (!msg) return
        if (outcome.kept) await msg.ackAck()
        else msg.term()
      }),
    },
  })
  const actor = createActor(machine, { input: { serverId: id, ...(opts.retryMs ? { retryMs: opts.retryMs } : {}) }, ...inspection() })
  actor.on('release2.synced', (e) => log(`synced format-2 ${e.product} r${e.rev} (meta seq ${e.seq})`))
  actor.on('release2.refused', (e) => log(`refused format-2 release at meta seq ${e.seq}: ${e.reason}`))
  actor.on('meta.failed', (e) => log(e.reason))
  actor.subscribe({ error: (err) => log(`meta sync actor failed: ${errorMessage(err)}`) })
  actor.start()

  return {
    store,
    actor,
    async meta(req) {
      if (req.kind === 'release') {
        const held = store.release(req.product, req.rev)
        if (!held) {
          throw new UpswarmError('UPSWARM_E_UNKNOWN_REVISION', `server ${id} holds no format-2 release ${req.rev === undefined ? '' : `r${req.rev} `}of ${req.product}`)
        }
        return Buffer.from(held.text)
      }
      if (req.kind === 'fresh') {
        const text = await readFresh(nc, req.product)
        if (!text) throw new UpswarmError('UPSWARM_E_NOT_FOUND', `no fresh statement of ${req.product} on the stream yet`)
        return Buffer.from(text)
      }
      return Buffer.from(JSON.stringify({ roots: await readRoots(nc, req.from) }))
    },
    async nodes({ hashes }) {
      const unknown = hashes.find((h) => !store.hasNode(h))
      if (unknown) throw new UpswarmError('UPSWARM_E_NOT_FOUND', `server ${id} holds no tree node ${unknown} (a node of a format-2 release it synced)`)
      const found: [string, Uint8Array][] = []
      const fits = replyBudget(hashes.length)
      let i = 0
      for (; i < hashes.length; i++) {
        const bytes = await store.readNode(hashes[i]!)
        if (!fits(bytes.length)) break
        found.push([hashes[i]!, bytes])
      }
      return encodeNodesReply(found, hashes.slice(i))
    },
    close() {
      actor.send({ type: 'stop' })
      actor.stop()
    },
  }
}

function refused(reason: string): UpswarmError {
  return new UpswarmError('UPSWARM_E_SIGNATURE', reason)
}
