// The `upswarm/statements` channel (docs/formats.md §1.8, §3.5; issue 10 item 7, R-DHT-2): signed
// roots and fresh statements travel peer to peer, so a client that reaches only peers still
// learns of a rotation or a revocation. Each side offers what it holds (its root version and, per
// product, the `issued` time of its newest fresh statement); the other answers with the
// documents the offerer lacks. A holder offers again whenever its TrustStore gains something,
// whoever fed it, so a statement reaching one peer reaches every connected peer in one round.
//
// Every document is verified by the TrustStore before it is kept or passed on. A peer that sends
// a document that fails to parse or verify, a malformed message or too many documents is
// reported ('protocol-error', UPSWARM_E_PEER) and its channel is closed; the connection stays.
import { createHash } from 'node:crypto'
import { EventEmitter } from 'node:events'
import b4a from 'b4a'
import c from 'compact-encoding'
import { sha256Hex } from '../release/hash.ts'
import { rawDecode, sentTypedReceivedRaw } from './wire-kit.ts'
import Protomux, { type Channel, type ProtomuxMessage } from 'protomux'
import type NoiseSecretStream from '@hyperswarm/secret-stream'
import { UpswarmError, errorMessage, isUpswarmError } from '../errors.ts'
import type { TrustStore } from '../formats/trust-store.ts'
import type { RolloutStore } from '../formats/rollout-store.ts'
import type { ReleaseDocs } from '../formats/release-docs.ts'
import {
  MAX_OFFER_ENTRIES, MAX_WANT_HASHES, STATEMENTS_PROTOCOL, STATEMENTS_VERSION, StatementKind,
  decodeStatementHandshake, statementBytes, statementDecoders, statementEncoders,
  type DocMessage, type OfferEntry, type OfferMessage, type StatementEncoder, type WantMessage, type WantRootsMessage,
} from './statements-codec.ts'

/** Documents one side sends one connection per minute at most; the receiver allows twice that (clock skew of the windows). */
export const MAX_DOCS_PER_MINUTE = 128
const WINDOW_MS = 60_000
/** Hashes of documents already handled, per connection; forgotten all at once past this. */
const MAX_SEEN = 4096
/** Mistakes of a peer, as opposed to this node's own failures (a disk error saving the store). */
const PEER_FAULTS = new Set(['UPSWARM_E_MANIFEST', 'UPSWARM_E_SIGNATURE', 'UPSWARM_E_ROLLBACK'])
const ZERO_HASH = b4a.alloc(32)

export interface StatementsOptions {
  /** Products this holder follows: it asks for their fresh statements even before holding one. */
  products?: string[]
  /**
   * A holder that pinned only a publisher key (format 1) takes a first root from a peer when
   * that key endorses it (docs/formats.md §3.1); without this, a holder with no root ignores roots.
   */
  endorsedBy?: { product: string; pinnedKey: string }
  /**
   * Issue 16 item 1: rollout statements travel here too (kind `rollout`). The holder offers, per
   * product it follows or holds statements of, its newest `seq`; a peer behind gets the ones after
   * its own. An older peer ignores the kind (docs/formats.md §1.8), so no version change.
   */
  rollouts?: RolloutStore
  /**
   * Issue 13 item 3 (R-DHT-2 for format 2): the newest release document of each followed product
   * travels here too (kind `release`), so a copy cut off from the servers learns of a release from
   * a peer. Offered per product with its revision; a peer behind gets the newest. A peer of an
   * earlier release neither offers nor keeps the kind (it dropped release docs), so no version change.
   */
  releases?: ReleaseDocs
}

export interface StatementsEvents {
  /** The store gained root `version` from `peer`. */
  root: [version: number, peer: string]
  /** The store gained a fresh statement of `product` from `peer`. */
  fresh: [product: string, issued: string, peer: string]
  /** The rollout store gained statement `seq` of `product` from `peer`. */
  rollout: [product: string, seq: number, peer: string]
  /** The holder gained format-2 release `rev` of `product` from `peer` (verified under its root). */
  release: [product: string, rev: number, peer: string]
  /** `peer` broke the protocol or sent a document that does not verify; its channel is closed. */
  'protocol-error': [error: UpswarmError, peer: string]
  /** This node failed to keep a document (the store could not be saved). */
  'store-error': [error: UpswarmError, peer: string]
}

/**
 * One holder's side of the channel (a working copy's daemon, a server): its TrustStore and the
 * open sessions it offers to again when the store changes.
 */
export class StatementsHolder extends EventEmitter<StatementsEvents> {
  readonly store: TrustStore
  private readonly opts: StatementsOptions
  private readonly sessions = new Set<StatementsSession>()
  private readonly stopListening: () => void
  /** Documents are checked and stored one at a time, whichever connection sent them. */
  private work: Promise<void> = Promise.resolve()

  constructor(store: TrustStore, opts: StatementsOptions = {}) {
    super()
    this.store = store
    this.opts = opts
    const offerAll = (): void => {
      for (const s of this.sessions) s.offer()
    }
    const stopTrust = store.onChange(offerAll)
    const stopRollouts = opts.rollouts?.onChange(offerAll)
    const stopReleases = opts.releases?.onChange(offerAll)
    this.stopListening = () => {
      stopTrust()
      stopRollouts?.()
      stopReleases?.()
    }
  }

  /** @internal The rollout store, if this holder passes statements on. */
  get rollouts(): RolloutStore | undefined {
    return this.opts.rollouts
  }

  /** @internal The release documents, if this holder passes them on. */
  get releases(): ReleaseDocs | undefined {
    return this.opts.releases
  }

  /** @internal Products whose rollout statements this holder asks for and offers. */
  rolloutProducts(): string[] {
    const r = this.opts.rollouts
    return r ? [...new Set([...(this.opts.products ?? []), ...r.products()])] : []
  }

  /** Opens the channel on a connection; call it in the connection handler, before the stream is read. */
  attach(stream: NoiseSecretStream): StatementsSession {
    const session = new StatementsSession(stream, this)
    this.sessions.add(session)
    void session.closedPromise.then(() => this.sessions.delete(session))
    return session
  }

  /** Stops offering on store changes; open channels close with their connections. */
  close(): void {
    this.stopListening()
    for (const s of this.sessions) s.close()
  }

  /** @internal What this holder offers. */
  offerEntries(): OfferEntry[] {
    const entries: OfferEntry[] = []
    const newest = this.store.rootsFrom(this.store.version).at(-1)
    entries.push({ kind: StatementKind.root, product: '', number: this.store.version, hash: newest ? sha256(newest) : ZERO_HASH })
    for (const product of this.freshProducts()) {
      const text = this.store.freshText(product)
      const issued = this.store.fresh(product)?.fresh.issued
      entries.push({ kind: StatementKind.fresh, product, number: issued ? issuedSeconds(issued) : 0, hash: text ? sha256(text) : ZERO_HASH })
    }
    for (const product of this.rolloutProducts()) {
      const newest = this.opts.rollouts!.statements(product).at(-1)
      entries.push({ kind: StatementKind.rollout, product, number: newest?.rollout.seq ?? 0, hash: newest ? sha256(newest.text) : ZERO_HASH })
    }
    for (const product of this.opts.releases?.products() ?? []) {
      const held = this.opts.releases!.newest(product)
      entries.push({ kind: StatementKind.release, product, number: held?.rev ?? 0, hash: held ? sha256(held.text) : ZERO_HASH })
    }
    return entries.slice(0, MAX_OFFER_ENTRIES)
  }

  /** @internal */
  freshProducts(): string[] {
    return [...new Set([...(this.opts.products ?? []), ...this.store.freshProducts()])]
  }

  /** @internal Can this holder use roots at all (it holds one, or may adopt an endorsed one)? */
  takesRoots(): boolean {
    return this.store.root !== undefined || this.opts.endorsedBy !== undefined
  }

  /** @internal Runs `fn` after every document queued before it. */
  serial(fn: () => Promise<void>): Promise<void> {
    const next = this.work.then(fn)
    this.work = next.catch(() => {})
    return next
  }

  /** @internal Checks and keeps a root; returns 'gap' when the ones between are missing. */
  async takeRoot(bytes: Uint8Array, where: string): Promise<'accepted' | 'known' | 'gap' | 'ignored'> {
    if (!this.store.root) {
      const e = this.opts.endorsedBy
      if (!e) return 'ignored'
      return (await this.store.adoptEndorsed(bytes, where, e.product, e.pinnedKey)) ? 'accepted' : 'ignored'
    }
    return this.store.acceptRoot(bytes, where)
  }
}

type Senders = {
  offer: ProtomuxMessage<OfferMessage>
  want: ProtomuxMessage<WantMessage>
  doc: ProtomuxMessage<DocMessage>
  wantRoots: ProtomuxMessage<WantRootsMessage>
}

/** One connection's statements channel. */
export class StatementsSession {
  readonly peer: string
  readonly closedPromise: Promise<void>
  private readonly holder: StatementsHolder
  private readonly where: string
  private readonly channel: Channel
  private readonly send: Senders
  private opened = false
  private closedFlag = false
  private resolveClosed!: () => void
  private readonly seen = new Set<string>()
  private sentWindow = { start: 0, count: 0 }
  /** The root version the peer offered last: a statement that does not verify under an older root here is not its fault. */
  private peerRootVersion = 0
  private receivedWindow = { start: 0, count: 0 }

  constructor(stream: NoiseSecretStream, holder: StatementsHolder) {
    this.holder = holder
    this.peer = stream.remotePublicKey ? b4a.toString(stream.remotePublicKey, 'hex') : 'unknown'
    this.where = `peer ${this.peer.slice(0, 12)}…`
    this.closedPromise = new Promise((resolve) => { this.resolveClosed = resolve })
    const channel = Protomux.from(stream).createChannel<Uint8Array>({
      protocol: STATEMENTS_PROTOCOL,
      handshake: { preencode: c.raw.preencode, encode: c.raw.encode, decode: rawDecode },
      onopen: (hs) => this.guard('handshake', () => this.onHandshake(hs)),
      onclose: () => this.onClose(),
    })
    if (channel === null) {
      throw new UpswarmError('UPSWARM_E_PEER', `cannot open ${STATEMENTS_PROTOCOL} to peer ${this.peer}: the connection is closed or already has one`)
    }
    this.channel = channel
    // Registration order is the wire's message type number (StatementMessageType).
    this.send = {
      offer: this.addMessage('offer', statementEncoders.offer, (b) => this.onOffer(statementDecoders.offer(b))),
      want: this.addMessage('want', statementEncoders.want, (b) => this.onWant(statementDecoders.want(b))),
      doc: this.addMessage('doc', statementEncoders.doc, (b) => this.onDoc(statementDecoders.doc(b))),
      wantRoots: this.addMessage('want-roots', statementEncoders.wantRoots, (b) => this.onWantRoots(statementDecoders.wantRoots(b))),
    }
    // Protomux drops types nobody registered: claim the next ones, so a peer using them is told off.
    for (let type = 4; type < 16; type++) {
      channel.addMessage<Uint8Array>({ encoding: c.raw, onmessage: () => this.guard(`message type ${type}`, () => { throw new ProtocolViolation(`sent unknown message type ${type}`) }) })
    }
    channel.open(statementBytes(statementEncoders.handshake, STATEMENTS_VERSION))
  }

  get closed(): boolean {
    return this.closedFlag
  }

  /** Tells the peer what this holder has (on open, and again whenever the store changes). */
  offer(): void {
    if (!this.opened || this.closedFlag) return
    this.send.offer.send({ entries: this.holder.offerEntries() })
  }

  close(): void {
    this.channel.close()
  }

  // ---- plumbing

  private addMessage<T>(name: string, encoder: StatementEncoder<T>, onBytes: (bytes: Uint8Array) => void): ProtomuxMessage<T> {
    return this.channel.addMessage<T>({
      encoding: sentTypedReceivedRaw(encoder),
      onmessage: (bytes: unknown) => this.guard(`${name} message`, () => onBytes(bytes as Uint8Array)),
    })
  }

  /** Runs a handler of remote input; nothing escapes into Protomux. */
  private guard(what: string, fn: () => void): void {
    if (this.closedFlag) return
    try {
      fn()
    } catch (err) {
      this.fault(what, err)
    }
  }

  private fault(what: string, err: unknown): void {
    if (this.closedFlag) return
    const e = new UpswarmError('UPSWARM_E_PEER', `peer ${this.peer} broke the ${STATEMENTS_PROTOCOL} protocol (${what}): ${errorMessage(err)}; closed its statements channel`,
      { cause: err, details: { reason: 'protocol', peer: this.peer } })
    this.channel.close()
    queueMicrotask(() => this.holder.emit('protocol-error', e, this.peer))
  }

  private onHandshake(bytes: Uint8Array): void {
    const version = decodeStatementHandshake(bytes)
    if (version !== STATEMENTS_VERSION) throw new ProtocolViolation(`speaks version ${version}, this node speaks ${STATEMENTS_VERSION}`)
    this.opened = true
    this.offer()
  }

  private onClose(): void {
    if (this.closedFlag) return
    this.closedFlag = true
    this.resolveClosed()
  }

  /** Counts a document against a per-minute budget; false when the budget is spent. */
  private spend(window: { start: number; count: number }, limit: number): boolean {
    const now = Date.now()
    if (now - window.start >= WINDOW_MS) {
      window.start = now
      window.count = 0
    }
    if (window.count >= limit) return false
    window.count++
    return true
  }

  private sendDoc(kind: number, text: string): void {
    if (this.closedFlag || !this.spend(this.sentWindow, MAX_DOCS_PER_MINUTE)) return
    this.send.doc.send({ kind, bytes: b4a.from(text) })
  }

  private sendRootsFrom(from: number): void {
    for (const text of this.holder.store.rootsFrom(from)) this.sendDoc(StatementKind.root, text)
  }

  // ---- messages

  private onOffer(msg: OfferMessage): void {
    const store = this.holder.store
    const theirRoot = msg.entries.find((e) => e.kind === StatementKind.root)?.number ?? 0
    this.peerRootVersion = theirRoot
    let ahead = this.holder.takesRoots() && theirRoot > store.version
    if (store.version > theirRoot) this.sendRootsFrom(theirRoot + 1)
    const mine = new Set(this.holder.freshProducts())
    for (const e of msg.entries) {
      if (e.kind !== StatementKind.fresh) continue
      const held = store.fresh(e.product)
      const heldSeconds = held ? issuedSeconds(held.fresh.issued) : 0
      if (heldSeconds > e.number) this.sendDoc(StatementKind.fresh, store.freshText(e.product)!)
      else if (e.number > heldSeconds && mine.has(e.product) && store.root) ahead = true
    }
    const rollouts = this.holder.rollouts
    if (rollouts) {
      const followed = new Set(this.holder.rolloutProducts())
      for (const e of msg.entries) {
        if (e.kind !== StatementKind.rollout) continue
        const newest = rollouts.newestSeq(e.product)
        // What the peer lacks, oldest first, within the send budget.
        if (newest > e.number) for (const h of rollouts.statements(e.product)) if (h.rollout.seq > e.number) this.sendDoc(StatementKind.rollout, h.text)
        if (e.number > newest && followed.has(e.product) && store.root) ahead = true
      }
    }
    const releases = this.holder.releases
    if (releases) {
      for (const e of msg.entries) {
        if (e.kind !== StatementKind.release) continue
        const held = releases.newest(e.product)
        if (held && held.rev > e.number) this.sendDoc(StatementKind.release, held.text)
        else if (e.number > (held?.rev ?? 0) && releases.follows(e.product) && store.root) ahead = true
      }
    }
    // The peer holds something this node lacks: it answers an offer with what the offerer lacks.
    if (ahead) this.offer()
  }

  private onWant(msg: WantMessage): void {
    const store = this.holder.store
    const wanted = new Set(msg.hashes.slice(0, MAX_WANT_HASHES).map((h) => b4a.toString(h, 'hex')))
    for (const text of store.rootsFrom(1)) if (wanted.has(sha256Hex(text))) this.sendDoc(StatementKind.root, text)
    for (const product of store.freshProducts()) {
      const text = store.freshText(product)
      if (text && wanted.has(sha256Hex(text))) this.sendDoc(StatementKind.fresh, text)
    }
    for (const product of this.holder.rolloutProducts()) {
      for (const h of this.holder.rollouts!.statements(product)) if (wanted.has(sha256Hex(h.text))) this.sendDoc(StatementKind.rollout, h.text)
    }
    for (const product of this.holder.releases?.products() ?? []) {
      const held = this.holder.releases!.newest(product)
      if (held && wanted.has(sha256Hex(held.text))) this.sendDoc(StatementKind.release, held.text)
    }
  }

  private onWantRoots(msg: WantRootsMessage): void {
    this.sendRootsFrom(msg.from)
  }

  private onDoc(msg: DocMessage): void {
    if (!this.spend(this.receivedWindow, 2 * MAX_DOCS_PER_MINUTE)) throw new ProtocolViolation(`sent more than ${2 * MAX_DOCS_PER_MINUTE} documents in a minute`)
    if (msg.kind > StatementKind.rollout) throw new ProtocolViolation(`sent a document of unknown kind ${msg.kind}`)
    // A holder without release documents (a server, which has the streams) ignores them, as earlier releases did.
    if (msg.kind === StatementKind.release && !this.holder.releases) return
    if (msg.kind === StatementKind.rollout && !this.holder.rollouts) return
    const hash = sha256Hex(msg.bytes)
    if (this.seen.has(hash)) return
    if (this.seen.size >= MAX_SEEN) this.seen.clear()
    this.seen.add(hash)
    // Copied: Protomux may reuse the frame's buffer once this handler returns.
    const bytes = b4a.from(msg.bytes)
    const kind = msg.kind
    // The peer's root as it sent the document (its next offer may come before the queue gets here).
    const peerRoot = this.peerRootVersion
    void this.holder.serial(async () => {
      if (this.closedFlag) return
      try {
        const early = kind === StatementKind.root ? await this.takeRoot(bytes)
          : kind === StatementKind.fresh ? await this.takeFresh(bytes)
            : kind === StatementKind.release ? this.takeRelease(bytes, peerRoot)
              : await this.takeRollout(bytes)
        if (early) this.seen.delete(hash)
      } catch (err) {
        this.seen.delete(hash)
        const e = isUpswarmError(err) ? err : new UpswarmError('UPSWARM_E_IO', errorMessage(err), { cause: err })
        if (PEER_FAULTS.has(e.code)) this.fault(KIND_WORDS[kind] ?? 'document', e)
        else this.holder.emit('store-error', e, this.peer)
      }
    })
  }

  /** Returns true when the document may be useful later (it came too early): it is not remembered as seen. */
  private async takeRoot(bytes: Uint8Array): Promise<boolean> {
    const outcome = await this.holder.takeRoot(bytes, this.where)
    if (outcome === 'accepted') this.holder.emit('root', this.holder.store.version, this.peer)
    if (outcome !== 'gap') return false
    // Roots are accepted one version at a time: ask for the ones between.
    this.askRootsAfterHeld()
    return true
  }

  private async takeRollout(bytes: Uint8Array): Promise<boolean> {
    const store = this.holder.store
    if (!store.root) return false
    try {
      if ((await this.holder.rollouts!.accept(bytes, this.where)) === 'accepted') {
        const r = this.holder.rollouts!.statements(String(signedOf(bytes)?.product ?? '')).find((h) => h.text === b4a.toString(bytes, 'utf8'))
        if (r) this.holder.emit('rollout', r.rollout.product, r.rollout.seq, this.peer)
      }
      return false
    } catch (err) {
      // Signed by a key a newer root (which the peer holds) introduced: fetch the roots first.
      if (this.peerRootVersion > store.version && isUpswarmError(err, 'UPSWARM_E_SIGNATURE')) {
        this.askRootsAfterHeld()
        return true
      }
      throw err
    }
  }

  /** Asks the peer for the roots after the one this node holds. */
  private askRootsAfterHeld(): void {
    if (!this.closedFlag) this.send.wantRoots.send({ from: this.holder.store.version + 1 })
  }

  /**
   * A document signed under a root this node does not hold yet is not the peer's fault: the roots
   * are asked for first, and true says the document came too early.
   */
  private signedUnderNewerRoot(signed: Record<string, unknown> | undefined): boolean {
    if (typeof signed?.root !== 'number' || signed.root <= this.holder.store.version) return false
    this.askRootsAfterHeld()
    return true
  }

  /**
   * A release document: kept when it verifies under the held root and is newer than the one held.
   * `peerRoot`: the root version the peer had offered when it sent the document.
   */
  private takeRelease(bytes: Uint8Array, peerRoot: number): boolean {
    const store = this.holder.store
    if (!store.root) return false
    const signed = signedOf(bytes)
    if (this.signedUnderNewerRoot(signed)) return true
    const releases = this.holder.releases!
    // Another product's release, validly signed: not news here, and not a fault (the peer follows it).
    if (typeof signed?.product === 'string' && !releases.follows(signed.product)) return false
    let outcome
    try {
      outcome = releases.accept(bytes, this.where)
    } catch (err) {
      // Signed by a key a newer root (this node's, sent to the peer on its offer) no longer lets
      // sign: the peer is behind, not lying.
      if (peerRoot > 0 && peerRoot < store.version && isUpswarmError(err, 'UPSWARM_E_SIGNATURE')) return false
      throw err
    }
    if (outcome === 'accepted') {
      const held = releases.newest(String(signed?.product))
      if (held) this.holder.emit('release', String(signed?.product), held.rev, this.peer)
    }
    return false
  }

  private async takeFresh(bytes: Uint8Array): Promise<boolean> {
    const store = this.holder.store
    if (!store.root) return false
    const signed = signedOf(bytes)
    if (this.signedUnderNewerRoot(signed)) return true
    if ((await store.acceptFresh(bytes, this.where)) === 'accepted') {
      const f = store.fresh(typeof signed?.product === 'string' ? signed.product : '')
      if (f) this.holder.emit('fresh', f.fresh.product, f.fresh.issued, this.peer)
    }
    return false
  }
}

const KIND_WORDS: Record<number, string> = {
  [StatementKind.root]: 'root document', [StatementKind.fresh]: 'fresh statement',
  [StatementKind.rollout]: 'rollout statement', [StatementKind.release]: 'release document',
}

/** The peer sent well-formed bytes that break the protocol's rules. */
class ProtocolViolation extends Error {
  override readonly name = 'ProtocolViolation'
}


function sha256(data: string | Uint8Array): Buffer {
  return createHash('sha256').update(data).digest()
}


function issuedSeconds(issued: string): number {
  return Math.max(0, Math.floor(Date.parse(issued) / 1000))
}

/** The `signed` object of an envelope, read without trusting it (the store verifies). */
function signedOf(bytes: Uint8Array): Record<string, unknown> | undefined {
  try {
    const env = JSON.parse(b4a.toString(bytes, 'utf8')) as { signed?: unknown }
    return env && typeof env.signed === 'object' && env.signed !== null ? env.signed as Record<string, unknown> : undefined
  } catch {
    return undefined
  }
}
