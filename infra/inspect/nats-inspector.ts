// Live inspection over NATS (issue 12 item 3): an XState `inspect` observer for one process
// (role + NATS identity) that publishes every actor's inspection events on
// `upswarm.inspect.<role>.<id>` in the shapes of `@statelyai/inspect`, bounded so that a busy
// process never floods NATS: at most INSPECT_MAX_PER_SECOND messages in any second.
//
// Under the limit everything goes out in order. Above it: events are sampled (queued only while
// the window has room for them, else dropped), snapshots queue per actor and coalesce (a
// snapshot in the same state as the one queued before it replaces it; past MAX_QUEUED_PER_ACTOR
// the newest replaces the last), and the queue drains oldest actor first as the window frees up,
// so long-lived actors (an update run, a server's sync) keep their state sequence while a swarm
// of per-file actors is thinned out: one that ends unannounced while more wait than the window
// lets through is dropped with everything it queued.
import type { NatsConnection } from '@nats-io/nats-core'
import type { StatelyInspectionEvent } from '@statelyai/inspect'
import type { AnyActorRef, AnyEventObject, InspectionEvent, Observer, Snapshot } from 'xstate'
import { identityOf } from '../nats/identity.ts'
import { inspectSubject, type InspectRole } from '../nats/names.ts'
import { actorMessage, encodeMessage, eventMessage, snapshotMessage } from './stately-events.ts'

/** What one process publishes at most, per second, whatever its actors do (issue 12: ≤ 50/s). */
export const INSPECT_MAX_PER_SECOND = 50
const WINDOW_MS = 1000
/** State changes of one actor kept while the limit holds them back; beyond, the newest replaces the last. */
export const MAX_QUEUED_PER_ACTOR = 16
/** How long close() lets queued messages drain (within the limit) before it drops them. */
export const CLOSE_WAIT_MS = 1000

export interface InspectClock {
  now(): number
  setTimeout(fn: () => void, ms: number): unknown
  clearTimeout(handle: unknown): void
}

const realClock: InspectClock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms).unref(),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
}

export interface InspectionStats {
  sent: number
  /** Events not sent because the limit was reached (sampling). */
  droppedEvents: number
  /** Snapshots replaced by a newer one of the same actor before they were sent. */
  coalesced: number
  /** Actors that ended before they could be announced, with all they queued. */
  droppedActors: number
}

/** A message held back by the window: a snapshot (`value` set) or an event. */
interface Queued { event: AnyEventObject; at: number; snapshot?: Snapshot<unknown>; value?: string; sourceId?: string | undefined }

interface Tracked {
  order: number
  ref: AnyActorRef
  rootId: string
  parentId: string | undefined
  createdAt: number
  announced: boolean
  queue: Queued[]
}

const valueKey = (s: Snapshot<unknown>): string => `${s.status}:${JSON.stringify((s as { value?: unknown }).value ?? null)}`
const ended = (s: Snapshot<unknown>): boolean => s.status === 'done' || s.status === 'error' || s.status === 'stopped'

/**
 * The limiter and orderer, independent of NATS: `send` gets each message when it may go out.
 * Until `resume()` (a process whose NATS connection comes later), everything queues.
 */
export class InspectionChannel {
  readonly stats: InspectionStats = { sent: 0, droppedEvents: 0, coalesced: 0, droppedActors: 0 }
  readonly inspect: Observer<InspectionEvent> = { next: (e) => this.observe(e) }
  private readonly tracked = new WeakMap<AnyActorRef, Tracked>()
  /** Actors with something waiting (their announcement or queued messages). */
  private readonly pending = new Map<string, Tracked>()
  /** Messages waiting, all actors together. */
  private backlog = 0
  /** When the messages of the current window went out (at most `max`). */
  private readonly sentAt: number[] = []
  private readonly clock: InspectClock
  private readonly max: number
  private timer: unknown
  private seq = 0
  private created = 0
  private sink: ((m: StatelyInspectionEvent) => void) | undefined

  constructor(send?: (m: StatelyInspectionEvent) => void, opts: { maxPerSecond?: number; clock?: InspectClock } = {}) {
    this.sink = send
    this.max = opts.maxPerSecond ?? INSPECT_MAX_PER_SECOND
    this.clock = opts.clock ?? realClock
  }

  /** Starts (or redirects) sending; what queued meanwhile drains within the limit. */
  resume(send: (m: StatelyInspectionEvent) => void): void {
    this.sink = send
    this.drain()
  }

  /** Messages waiting for the window. */
  get waiting(): number {
    return this.backlog
  }

  /** Lets what is queued drain within the limit for at most `waitMs`, then drops the rest. */
  async close(waitMs = CLOSE_WAIT_MS): Promise<void> {
    const deadline = this.clock.now() + waitMs
    while (this.sink && this.backlog > 0 && this.clock.now() < deadline) {
      await new Promise<void>((resolve) => this.clock.setTimeout(resolve, Math.min(50, Math.max(1, deadline - this.clock.now()))))
      this.drain()
    }
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer)
    this.timer = undefined
    this.pending.clear()
    this.backlog = 0
    this.sink = undefined
  }

  private observe(e: InspectionEvent): void {
    if (e.type === '@xstate.actor') {
      const ref = e.actorRef as AnyActorRef
      const t: Tracked = {
        order: ++this.created, ref, rootId: e.rootId, parentId: (ref as { _parent?: AnyActorRef })._parent?.sessionId,
        createdAt: this.clock.now(), announced: false, queue: [],
      }
      this.tracked.set(ref, t)
      // Announced from the next turn (as @statelyai/inspect does): the actor is still being
      // constructed and its snapshot cannot be read yet.
      this.pending.set(ref.sessionId, t)
      this.backlog++
      this.schedule()
      return
    }
    if (e.type !== '@xstate.snapshot' && e.type !== '@xstate.event') return
    const t = this.tracked.get(e.actorRef as AnyActorRef)
    if (!t) return
    const at = this.clock.now()
    if (e.type === '@xstate.event') {
      const item: Queued = { event: e.event, at, sourceId: e.sourceRef?.sessionId }
      if (t.announced && this.backlog === 0 && this.room() > 0) this.send(t, item)
      // Events are sampled: queued while the window has room for them, else dropped.
      else if (this.backlog < this.room() && t.queue.length < MAX_QUEUED_PER_ACTOR) this.enqueue(t, item)
      else this.stats.droppedEvents++
      return
    }
    const item: Queued = { event: e.event, at, snapshot: e.snapshot, value: valueKey(e.snapshot) }
    if (!t.announced && ended(e.snapshot) && this.backlog >= this.room()) {
      // Ended before it could be announced, with more waiting than the window lets through: dropped whole.
      this.pending.delete(t.ref.sessionId)
      this.backlog -= 1 + t.queue.length
      this.stats.droppedActors++
      return
    }
    if (t.announced && this.backlog === 0 && this.room() > 0) {
      this.send(t, item)
      return
    }
    // A snapshot in the same state as the snapshot queued last (say, a context change) replaces
    // it, and so does one past MAX_QUEUED_PER_ACTOR: the newest state always gets through.
    const last = t.queue.at(-1)
    if (last?.value !== undefined && (last.value === item.value || t.queue.length >= MAX_QUEUED_PER_ACTOR)) {
      t.queue[t.queue.length - 1] = item
      this.stats.coalesced++
      return
    }
    this.enqueue(t, item)
  }

  private enqueue(t: Tracked, item: Queued): void {
    t.queue.push(item)
    this.backlog++
    this.pending.set(t.ref.sessionId, t)
    this.schedule()
  }

  /** How many more messages fit in the window now (none without a sink). */
  private room(): number {
    if (!this.sink) return 0
    const now = this.clock.now()
    while (this.sentAt.length > 0 && this.sentAt[0]! <= now - WINDOW_MS) this.sentAt.shift()
    return this.max - this.sentAt.length
  }

  private emit(m: StatelyInspectionEvent): void {
    this.sentAt.push(this.clock.now())
    this.stats.sent++
    this.sink?.(m)
  }

  private announce(t: Tracked): void {
    t.announced = true
    // Its state when announced: the snapshots queued before that follow, so nothing is skipped.
    const snapshot = t.queue.find((q) => q.snapshot)?.snapshot ?? (t.ref.getSnapshot() as Snapshot<unknown>)
    this.emit(actorMessage({ sessionId: t.ref.sessionId, rootId: t.rootId, seq: ++this.seq, at: t.createdAt, actorRef: t.ref, parentId: t.parentId, snapshot }))
  }

  private send(t: Tracked, item: Queued): void {
    const b = { sessionId: t.ref.sessionId, rootId: t.rootId, seq: ++this.seq, at: item.at, event: item.event }
    this.emit(item.snapshot ? snapshotMessage({ ...b, snapshot: item.snapshot }) : eventMessage({ ...b, sourceId: item.sourceId }))
  }

  /** Sends what waits, oldest actor first, while the window has room. */
  private drain(): void {
    while (this.pending.size > 0 && this.room() > 0) {
      let first: Tracked | undefined
      for (const t of this.pending.values()) if (!first || t.order < first.order) first = t
      const t = first!
      if (!t.announced) this.announce(t)
      else this.send(t, t.queue.shift()!)
      this.backlog--
      if (t.announced && t.queue.length === 0) this.pending.delete(t.ref.sessionId)
    }
    this.schedule()
  }

  private schedule(): void {
    if (this.timer !== undefined || this.pending.size === 0 || !this.sink) return
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
  /** Drains what waits (within the limit, CLOSE_WAIT_MS at most); call before closing the connection. */
  close(): Promise<void>
}

/**
 * The inspector of one process: its actors' inspection events, bounded, on NATS. Without a
 * connection yet (a daemon that starts offline), they queue within the same bounds until attach().
 */
export function createNatsInspector(role: InspectRole, opts: { nc?: NatsConnection; maxPerSecond?: number; clock?: InspectClock } = {}): NatsInspector {
  const channel = new InspectionChannel(undefined, opts)
  const attach = (nc: NatsConnection): void => {
    const subject = inspectSubject(role, identityOf(nc))
    channel.resume((m) => {
      if (!nc.isClosed()) nc.publish(subject, encodeMessage(m))
    })
  }
  if (opts.nc) attach(opts.nc)
  return { inspect: channel.inspect, stats: channel.stats, attach, close: () => channel.close() }
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

/** Ends this process's inspection (drains what waits first). */
export async function stopInspection(): Promise<void> {
  const i = processInspector
  processInspector = undefined
  await i?.close()
}

/** The process's inspector, if any. */
export const currentInspector = (): NatsInspector | undefined => processInspector

/** `createActor(logic, { input, ...inspection() })`: the process's inspect observer when inspection is on. */
export const inspection = (): { inspect?: Observer<InspectionEvent> } => (processInspector ? { inspect: processInspector.inspect } : {})
