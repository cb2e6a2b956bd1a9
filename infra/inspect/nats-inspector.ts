// Live inspection over NATS (issue 12 item 3): an XState `inspect` observer for one process
// (role + NATS identity) that publishes every actor's inspection events on
// `upswarm.inspect.<role>.<id>` in the shapes of `@statelyai/inspect`, within a budget: at most
// INSPECT_MAX_PER_SECOND messages in any 1000 ms (so in any wall-clock second too), whatever the
// actors do. The publisher holds the bound itself and counts what it sends per wall-clock second.
//
// Under the budget everything goes out in order. Above it: actors' creations go first (oldest
// first, before any actor's queued messages, so every actor is known as soon as the budget
// allows); events are sampled (queued only while the window has room for them, else dropped and
// counted); snapshots queue per actor and coalesce (a snapshot in the same state as the one
// queued before it replaces it; past MAX_QUEUED_PER_ACTOR the newest replaces the last), so the
// newest snapshot of every actor gets through and long-lived actors (an update run, a server's
// sync) keep their state sequence; queued messages drain oldest actor first. A swarm of per-file
// actors is thinned out: one that ends unannounced while more wait than the window lets through
// is sent as one message, its creation carrying its last snapshot; only past MAX_UNANNOUNCED
// actors waiting is it dropped whole (counted).
// Every SUMMARY_EVERY_MS while anything happens, and at close, an InspectionSummary says what was
// sent and what was left out (it takes its place in the budget, first in line).
import type { NatsConnection } from '@nats-io/nats-core'
import type { StatelyInspectionEvent } from '@statelyai/inspect'
import type { AnyActorRef, AnyEventObject, InspectionEvent, Observer, Snapshot } from 'xstate'
import { identityOf } from '../nats/identity.ts'
import { inspectSubject, type InspectRole } from '../nats/names.ts'
import { actorMessage, configOf, encodeMessage, eventMessage, snapshotMessage } from './stately-events.ts'
import { SUMMARY_TYPE, type InspectionSummary } from './summary.ts'

/** What one process publishes at most, per second, whatever its actors do (issue 12: ≤ 50/s). */
export const INSPECT_MAX_PER_SECOND = 50
const WINDOW_MS = 1000
/** State changes of one actor kept while the budget holds them back; beyond, the newest replaces the last. */
export const MAX_QUEUED_PER_ACTOR = 32
/** How long close() lets queued messages drain (within the budget) before it drops them. */
export const CLOSE_WAIT_MS = 3000
/** Actors waiting for their announcement (≈ 2 s of budget) beyond which one that ends unannounced is dropped whole. */
export const MAX_UNANNOUNCED = 100
/** Seconds of budget waiting beyond which a new per-file actor runs uninspected (admitsWorker). */
export const WORKER_ADMIT_WINDOWS = 2
/** How often a summary goes out while the process's actors do anything. */
export const SUMMARY_EVERY_MS = 5000
/**
 * A machine's definition (about 1–5 KB of JSON, most of an actor message) goes with the first actor
 * of that machine a process announces and again at most this often; the actors in between carry
 * none, and receivers fill it in from the last one they saw (infra/inspect/board.ts).
 */
export const DEFINITION_EVERY_MS = 60_000

export interface InspectClock {
  now(): number
  /** `hold`: the timer keeps the process alive (close() waiting); else it does not. */
  setTimeout(fn: () => void, ms: number, hold?: boolean): unknown
  clearTimeout(handle: unknown): void
}

const realClock: InspectClock = {
  now: () => Date.now(),
  setTimeout: (fn, ms, hold) => {
    const t = setTimeout(fn, ms)
    return hold ? t : t.unref()
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
}

/** The publisher's counters (the summary's figures without its type and time). */
export type InspectionStats = Omit<InspectionSummary, 'type' | 'createdAt' | 'budget' | 'waiting' | 'meanPerSecond'> & {
  /** Summaries among the messages sent. */
  summaries: number
  uninspected: number
  /** Wall-clock seconds from the first message's second to the last one's (0 before the first). */
  seconds: number
}

/** A message held back by the window: a snapshot (`value` set) or an event. */
interface Queued { event: AnyEventObject; at: number; snapshot?: Snapshot<unknown>; value?: string; sourceId?: string | undefined }

/** Tracked actors with something queued, by creation order (a binary min-heap on `order`). */
class OldestFirst {
  private heap: Tracked[] = []
  private readonly members = new Set<Tracked>()

  get size(): number {
    return this.members.size
  }

  add(t: Tracked): void {
    if (this.members.has(t)) return
    this.members.add(t)
    this.heap.push(t)
    this.up(this.heap.length - 1)
  }

  oldest(): Tracked | undefined {
    return this.heap[0]
  }

  remove(t: Tracked): void {
    if (!this.members.delete(t)) return
    const i = this.heap.indexOf(t)
    const last = this.heap.pop()!
    if (i === this.heap.length) return
    this.heap[i] = last
    this.up(i)
    this.down(i)
  }

  clear(): void {
    this.heap = []
    this.members.clear()
  }

  private up(i: number): void {
    const h = this.heap
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (h[parent]!.order <= h[i]!.order) return
      ;[h[parent], h[i]] = [h[i]!, h[parent]!]
      i = parent
    }
  }

  private down(i: number): void {
    const h = this.heap
    for (;;) {
      const l = 2 * i + 1
      const r = l + 1
      let min = i
      if (l < h.length && h[l]!.order < h[min]!.order) min = l
      if (r < h.length && h[r]!.order < h[min]!.order) min = r
      if (min === i) return
      ;[h[min], h[i]] = [h[i]!, h[min]!]
      i = min
    }
  }
}

interface Tracked {
  order: number
  ref: AnyActorRef
  rootId: string
  parentId: string | undefined
  createdAt: number
  announced: boolean
  /** Run for another actor as a root of its own (a per-file actor), or a child of one: under pressure only its newest snapshot counts. */
  worker: boolean
  /** It ended unannounced: its announcement carries this last snapshot, and nothing follows. */
  last?: Snapshot<unknown> | undefined
  queue: Queued[]
}

/** Where an actor that runs as a root of its own is shown: under another actor's tree. */
interface Under { parentId: string; rootId: string }

const valueKey = (s: Snapshot<unknown>): string => `${s.status}:${JSON.stringify((s as { value?: unknown }).value ?? null)}`
const ended = (s: Snapshot<unknown>): boolean => s.status === 'done' || s.status === 'error' || s.status === 'stopped'

/** The channel that inspects each actor, so that an actor working for it can be inspected as its child. */
const channels = new WeakMap<AnyActorRef, InspectionChannel>()

/**
 * The budget and the order, independent of NATS: `send` gets each message when it may go out,
 * `sendSummary` (when given) the summaries. Until `resume()` (a process whose NATS connection
 * comes later), everything queues.
 */
export class InspectionChannel {
  readonly stats: InspectionStats = {
    taken: 0, sent: 0, summaries: 0, droppedEvents: 0, coalesced: 0, droppedActors: 0, uninspected: 0, droppedWithActors: 0, discardedAtClose: 0, busiestSecond: 0, seconds: 0,
  }
  readonly inspect: Observer<InspectionEvent> = { next: (e) => this.observe(e) }
  private readonly tracked = new WeakMap<AnyActorRef, Tracked>()
  /** Actors waiting for their announcement, oldest first (a Map keeps the order they were made in). */
  private readonly toAnnounce = new Map<string, Tracked>()
  /** When each machine's definition was last sent: the per-file actors of an update share one, sent once a minute, not with each of them. */
  private readonly definitionSentAt = new WeakMap<object, number>()
  /** Announced actors with queued messages. */
  private readonly pending = new OldestFirst()
  /** Messages waiting, all actors together. */
  private backlog = 0
  /** When the messages of the current window went out (at most `max`). */
  private readonly sentAt: number[] = []
  private readonly clock: InspectClock
  private readonly max: number
  private readonly summaryEveryMs: number
  private timer: unknown
  private summaryTimer: unknown
  /** A summary waits for room in the window. */
  private summaryDue = false
  /** Closed: whatever its actors still do is not taken. */
  private closed = false
  private seq = 0
  private created = 0
  /** The wall-clock second of the last message sent, the count in it, and the first one's. */
  private second = -1
  private inSecond = 0
  private firstSecond = -1
  private sink: ((m: StatelyInspectionEvent) => void) | undefined
  private summarySink: ((s: InspectionSummary) => void) | undefined

  constructor(send?: (m: StatelyInspectionEvent) => void, opts: { maxPerSecond?: number; clock?: InspectClock; sendSummary?: (s: InspectionSummary) => void; summaryEveryMs?: number } = {}) {
    this.sink = send
    this.summarySink = opts.sendSummary
    this.max = opts.maxPerSecond ?? INSPECT_MAX_PER_SECOND
    this.clock = opts.clock ?? realClock
    this.summaryEveryMs = opts.summaryEveryMs ?? SUMMARY_EVERY_MS
  }

  /** Starts (or redirects) sending; what queued meanwhile drains within the budget. */
  resume(send: (m: StatelyInspectionEvent) => void, sendSummary?: (s: InspectionSummary) => void): void {
    this.sink = send
    if (sendSummary) this.summarySink = sendSummary
    this.drain()
  }

  /** Messages waiting for the window. */
  get waiting(): number {
    return this.backlog
  }

  /** Messages sent per wall-clock second on average, from the first message's second to the last one's. */
  get meanPerSecond(): number {
    return this.stats.seconds === 0 ? 0 : Math.round((this.stats.sent / this.stats.seconds) * 10) / 10
  }

  /**
   * Whether a new actor working for another (a per-file actor) is inspected: only while less than
   * WORKER_ADMIT_WINDOWS seconds of budget wait to be sent. One made under more pressure than that
   * would be coalesced or dropped before it could be shown; made without an observer, it costs
   * nothing (XState builds no inspection events for a system nobody inspects). Counted.
   */
  admitsWorker(): boolean {
    if (this.closed) return false
    if (!this.sink || this.backlog < WORKER_ADMIT_WINDOWS * this.max) return true
    this.stats.uninspected++
    return false
  }

  /**
   * The observer for an actor that works for `parent` but runs as a root actor of its own: its
   * messages are those of a child of `parent` (`parentId`, and `rootId` of the parent's tree),
   * as @statelyai/inspect's `actor(ref, snapshot, { parentId, rootId })` names them.
   */
  observerUnder(parent: AnyActorRef): Observer<InspectionEvent> {
    const under: Under = { parentId: parent.sessionId, rootId: this.tracked.get(parent)?.rootId ?? parent.sessionId }
    return { next: (e) => this.observe(e, under) }
  }

  /**
   * Lets what is queued drain within the budget for at most `waitMs`, counts what is left as
   * discarded, and sends the last summary (within the budget too, up to `waitMs` more).
   */
  async close(waitMs = CLOSE_WAIT_MS): Promise<void> {
    const deadline = this.clock.now() + waitMs
    // Held timers: a command that closes its inspection before it exits must not exit half-way.
    const pause = (ms: number): Promise<void> => new Promise<void>((resolve) => this.clock.setTimeout(resolve, Math.max(1, ms), true))
    while (this.sink && this.backlog > 0 && this.clock.now() < deadline) {
      await pause(Math.min(50, deadline - this.clock.now()))
      this.drain()
    }
    this.closed = true
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer)
    if (this.summaryTimer !== undefined) this.clock.clearTimeout(this.summaryTimer)
    this.timer = this.summaryTimer = undefined
    this.stats.discardedAtClose += this.backlog
    this.pending.clear()
    this.toAnnounce.clear()
    this.backlog = 0
    if (this.summarySink && this.stats.taken > 0) {
      while (this.room() === 0 && this.clock.now() < deadline + waitMs) await pause(this.sentAt[0]! + WINDOW_MS - this.clock.now())
      if (this.room() > 0) this.sendSummaryNow()
    }
    this.sink = undefined
    this.summarySink = undefined
  }

  private observe(e: InspectionEvent, under?: Under): void {
    if (this.closed) return
    if (e.type === '@xstate.actor') {
      const ref = e.actorRef as AnyActorRef
      const t: Tracked = {
        order: ++this.created, ref, rootId: under?.rootId ?? e.rootId, parentId: ref._parent?.sessionId ?? under?.parentId,
        createdAt: this.clock.now(), announced: false, worker: under !== undefined, queue: [],
      }
      this.tracked.set(ref, t)
      channels.set(ref, this)
      this.took()
      // Announced from the next turn (as @statelyai/inspect does): the actor is still being
      // constructed and its snapshot cannot be read yet.
      this.toAnnounce.set(ref.sessionId, t)
      this.backlog++
      this.schedule()
      return
    }
    if (e.type !== '@xstate.snapshot' && e.type !== '@xstate.event') return
    const t = this.tracked.get(e.actorRef as AnyActorRef)
    if (!t) return
    this.took()
    const at = this.clock.now()
    if (e.type === '@xstate.event') {
      const item: Queued = { event: e.event, at, sourceId: e.sourceRef?.sessionId }
      if (t.announced && this.backlog === 0 && this.room() > 0) this.send(t, item)
      // Events are sampled: queued while the window has room for them, else dropped (counted).
      else if (this.backlog < this.room() && t.queue.length < MAX_QUEUED_PER_ACTOR) this.enqueue(t, item)
      else this.stats.droppedEvents++
      return
    }
    const item: Queued = { event: e.event, at, snapshot: e.snapshot, value: valueKey(e.snapshot) }
    if (!t.announced && ended(e.snapshot) && this.backlog >= this.room()) {
      if (this.toAnnounce.size > MAX_UNANNOUNCED) {
        // Ended unannounced while too many wait to be announced: dropped whole, so that the
        // inspection does not lag far behind.
        this.toAnnounce.delete(t.ref.sessionId)
        this.backlog -= 1 + t.queue.length
        this.stats.droppedActors++
        this.stats.droppedWithActors += 2 + t.queue.length
        t.queue = []
        return
      }
      if (t.worker) {
        // A worker that ended before it could be announced, with more waiting than the window lets
        // through: one message, its creation with this last snapshot, says it all.
        const snapshots = t.queue.filter((q) => q.snapshot).length
        this.stats.coalesced += snapshots + 1
        this.stats.droppedEvents += t.queue.length - snapshots
        this.backlog -= t.queue.length
        t.queue = []
        t.last = e.snapshot
        return
      }
    }
    if (t.announced && this.backlog === 0 && this.room() > 0) {
      this.send(t, item)
      return
    }
    // A snapshot in the same state as the snapshot queued last (say, a context change) replaces
    // it, and so does one past MAX_QUEUED_PER_ACTOR: the newest state always gets through.
    // A worker keeps only its newest snapshot waiting.
    const last = t.queue.at(-1)
    if (last?.value !== undefined && (t.worker || last.value === item.value || t.queue.length >= MAX_QUEUED_PER_ACTOR)) {
      t.queue[t.queue.length - 1] = item
      this.stats.coalesced++
      return
    }
    this.enqueue(t, item)
  }

  /** Counts one inspection event taken, and makes sure a summary will tell of it. */
  private took(): void {
    this.stats.taken++
    if (this.summarySink && this.summaryTimer === undefined) {
      this.summaryTimer = this.clock.setTimeout(() => {
        this.summaryTimer = undefined
        this.summaryDue = true
        this.drain()
      }, this.summaryEveryMs)
    }
  }

  private enqueue(t: Tracked, item: Queued): void {
    t.queue.push(item)
    this.backlog++
    if (t.announced) this.pending.add(t)
    this.schedule()
  }

  /** How many more messages fit in the window now (none without a sink). */
  private room(): number {
    if (!this.sink) return 0
    const now = this.clock.now()
    while (this.sentAt.length > 0 && this.sentAt[0]! <= now - WINDOW_MS) this.sentAt.shift()
    return this.max - this.sentAt.length
  }

  /** Takes a place in the window and counts the message in its wall-clock second. */
  private count(): void {
    const now = this.clock.now()
    this.sentAt.push(now)
    this.stats.sent++
    const second = Math.floor(now / 1000)
    if (second !== this.second) {
      this.second = second
      this.inSecond = 0
      if (this.firstSecond < 0) this.firstSecond = second
    }
    this.inSecond++
    this.stats.busiestSecond = Math.max(this.stats.busiestSecond, this.inSecond)
    this.stats.seconds = second - this.firstSecond + 1
  }

  private emit(m: StatelyInspectionEvent): void {
    this.count()
    this.sink?.(m)
  }

  private sendSummaryNow(): void {
    this.summaryDue = false
    this.count()
    this.stats.summaries++
    const { summaries: _s, seconds: _n, ...figures } = this.stats
    this.summarySink?.({ type: SUMMARY_TYPE, createdAt: String(this.clock.now()), budget: this.max, ...figures, waiting: this.backlog, meanPerSecond: this.meanPerSecond })
  }

  private announce(t: Tracked): void {
    t.announced = true
    // Its state when announced: the snapshots queued before that follow, so nothing is skipped.
    const snapshot = t.last ?? t.queue.find((q) => q.snapshot)?.snapshot ?? (t.ref.getSnapshot() as Snapshot<unknown>)
    t.last = undefined
    const config = configOf(t.ref)
    const now = this.clock.now()
    const lastSent = config ? this.definitionSentAt.get(config) : undefined
    const withDefinition = lastSent === undefined || now - lastSent >= DEFINITION_EVERY_MS
    if (config && withDefinition) this.definitionSentAt.set(config, now)
    this.emit(actorMessage({ sessionId: t.ref.sessionId, rootId: t.rootId, seq: ++this.seq, at: t.createdAt, actorRef: t.ref, parentId: t.parentId, snapshot, withDefinition }))
  }

  private send(t: Tracked, item: Queued): void {
    const b = { sessionId: t.ref.sessionId, rootId: t.rootId, seq: ++this.seq, at: item.at, event: item.event }
    this.emit(item.snapshot ? snapshotMessage({ ...b, snapshot: item.snapshot }) : eventMessage({ ...b, sourceId: item.sourceId }))
  }

  /**
   * Sends what waits while the window has room: a due summary first, then every actor's creation
   * (oldest first), then queued messages, oldest actor first.
   */
  private drain(): void {
    if (this.summaryDue && this.room() > 0) this.sendSummaryNow()
    while (this.room() > 0) {
      const next: Tracked | undefined = this.toAnnounce.values().next().value
      if (next) {
        this.toAnnounce.delete(next.ref.sessionId)
        this.announce(next)
        this.backlog--
        if (next.queue.length > 0) this.pending.add(next)
        continue
      }
      if (this.pending.size === 0) break
      // The oldest actor with something queued, from a heap: a scan of every pending actor per
      // message sent cost more than the messages themselves under an update's per-file actors.
      const first = this.pending.oldest()
      this.send(first!, first!.queue.shift()!)
      this.backlog--
      if (first!.queue.length === 0) this.pending.remove(first!)
    }
    this.schedule()
  }

  private schedule(): void {
    if (this.timer !== undefined || (this.pending.size === 0 && this.toAnnounce.size === 0 && !this.summaryDue) || !this.sink) return
    const wait = this.sentAt.length < this.max ? 0 : Math.max(0, this.sentAt[0]! + WINDOW_MS - this.clock.now())
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined
      this.drain()
    }, wait)
  }
}

export interface NatsInspector {
  /** The observer to pass to `createActor(logic, { inspect })`. */
  readonly inspect: Observer<InspectionEvent>
  readonly stats: InspectionStats
  /** Publishes on `upswarm.inspect.<role>.<identity of nc>` from now on (what queued meanwhile too). */
  attach(nc: NatsConnection): void
  /** Drains what waits (within the budget, CLOSE_WAIT_MS at most) and sends the last summary; call before closing the connection. */
  close(): Promise<void>
}

/**
 * The inspector of one process: its actors' inspection events, within the budget, on NATS, and
 * its summaries on the same subject. Without a connection yet (a daemon that starts offline),
 * they queue within the same bounds until attach().
 */
export function createNatsInspector(role: InspectRole, opts: { nc?: NatsConnection; maxPerSecond?: number; clock?: InspectClock; summaryEveryMs?: number } = {}): NatsInspector {
  const channel = new InspectionChannel(undefined, opts)
  let attached: NatsConnection | undefined
  const attach = (nc: NatsConnection): void => {
    attached = nc
    const subject = inspectSubject(role, identityOf(nc))
    const publish = (text: string): void => {
      if (!nc.isClosed()) nc.publish(subject, text)
    }
    channel.resume((m) => publish(encodeMessage(m)), (s) => publish(JSON.stringify(s)))
  }
  if (opts.nc) attach(opts.nc)
  // The last summary is published just before its process closes the connection, and the
  // client's close() drops what it has not written to the socket yet: a flush (one round trip)
  // makes sure the server has it.
  const close = async (): Promise<void> => {
    await channel.close()
    if (attached && !attached.isClosed()) await attached.flush().catch(() => {})
  }
  return { inspect: channel.inspect, stats: channel.stats, attach, close }
}

let processInspector: NatsInspector | undefined

/**
 * Turns inspection on for this process (`--inspect`, UPSWARM_INSPECT=1): every actor created
 * with `inspection()` from now on reports to it. One per process, as one process is one role.
 */
export function startInspection(role: InspectRole, nc?: NatsConnection): NatsInspector {
  processInspector = createNatsInspector(role, nc ? { nc } : {})
  return processInspector
}

/** Ends this process's inspection (drains what waits first, then sends the last summary). */
export async function stopInspection(): Promise<void> {
  const i = processInspector
  processInspector = undefined
  await i?.close()
}

/** The process's inspector, if any. */
export const currentInspector = (): NatsInspector | undefined => processInspector

/** `createActor(logic, { input, ...inspection() })`: the process's inspect observer when inspection is on. */
export const inspection = (): { inspect?: Observer<InspectionEvent> } => (processInspector ? { inspect: processInspector.inspect } : {})

/**
 * `createActor(logic, { input, ...inspectionUnder(parent) })` for an actor that works for
 * `parent` but runs as a root actor of its own (the per-file actors of an update run, the tracker
 * session of a daemon): inspected by whatever inspects `parent`, and shown as its child. Without
 * an inspected parent, the process's inspection as `inspection()`.
 */
export function inspectionUnder(parent: AnyActorRef | undefined): { inspect?: Observer<InspectionEvent> } {
  const channel = parent && channels.get(parent)
  if (!channel) return inspection()
  return channel.admitsWorker() ? { inspect: channel.observerUnder(parent) } : {}
}
