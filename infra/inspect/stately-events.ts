// XState inspection events → the JSON messages `@statelyai/inspect` sends to the Stately
// inspector (`@xstate.actor`, `@xstate.event`, `@xstate.snapshot`), with every context and event
// bounded: big strings cut, binary data named by its size, long lists shortened, depth limited.
// The shapes are the package's own types (StatelyInspectionEvent), checked by tsc here and by
// isStatelyInspectionEvent at run time where messages come in from NATS (issue 12 item 3).
import type { StatelyActorEvent, StatelyEventEvent, StatelyInspectionEvent, StatelySnapshotEvent } from '@statelyai/inspect'
import type { AnyActorRef, AnyEventObject, Snapshot } from 'xstate'

/** The `_version` field: the `@statelyai/inspect` release whose shapes these are (a test compares it with the installed one). */
export const STATELY_INSPECT_VERSION = '0.7.2'

/** Bounds of what one message carries of a context or an event. */
export const BOUNDS = { depth: 4, string: 256, items: 20, keys: 40 } as const
/** A message above this size is sent with its context and event left out (NATS carries up to 1 MiB). */
export const MAX_MESSAGE_BYTES = 64 * 1024

/**
 * A JSON-safe copy of `value` within BOUNDS: strings cut, Uint8Array/ArrayBuffer as `[N bytes]`,
 * lists and objects shortened (with a `…` entry saying how much was left out), nesting below
 * BOUNDS.depth as `[…]`, functions by name, actor refs by id, errors as { name, message, code }.
 */
export function bounded(value: unknown, depth: number = BOUNDS.depth): unknown {
  switch (typeof value) {
    case 'string':
      return value.length > BOUNDS.string ? `${value.slice(0, BOUNDS.string)}… (${value.length} chars)` : value
    case 'number':
      return Number.isFinite(value) ? value : String(value)
    case 'boolean':
      return value
    case 'bigint':
      return value.toString()
    case 'function':
      return `[function ${value.name || 'anonymous'}]`
    case 'undefined':
    case 'symbol':
      return undefined
  }
  if (value === null) return null
  if (value instanceof Uint8Array || value instanceof ArrayBuffer) return `[${value.byteLength} bytes]`
  if (ArrayBuffer.isView(value)) return `[${value.byteLength} bytes]`
  if (value instanceof Error) {
    const code = (value as { code?: unknown }).code
    return { name: value.name, message: bounded(value.message), ...(typeof code === 'string' ? { code } : {}) }
  }
  if (isActorRef(value)) return { actor: value.id }
  if (value instanceof Date) return value.toISOString()
  if (depth <= 0) return '[…]'
  // Maps and sets are read up to the bound only: a context may hold thousands of entries.
  if (value instanceof Map) {
    const out: Record<string, unknown> = {}
    let n = 0
    for (const [k, v] of value) {
      if (n++ === BOUNDS.keys) break
      const b = bounded(v, depth - 1)
      if (b !== undefined) out[String(k)] = b
    }
    if (value.size > BOUNDS.keys) out['…'] = `${value.size - BOUNDS.keys} more keys`
    return out
  }
  if (value instanceof Set) {
    const out: unknown[] = []
    for (const v of value) {
      if (out.length === BOUNDS.items) break
      out.push(bounded(v, depth - 1))
    }
    if (value.size > BOUNDS.items) out.push(`… ${value.size - BOUNDS.items} more`)
    return out
  }
  if (Array.isArray(value)) {
    const out = value.slice(0, BOUNDS.items).map((v) => bounded(v, depth - 1))
    if (value.length > BOUNDS.items) out.push(`… ${value.length - BOUNDS.items} more`)
    return out
  }
  const out: Record<string, unknown> = {}
  const keys = Object.keys(value as object)
  for (const k of keys.slice(0, BOUNDS.keys)) {
    const v = bounded((value as Record<string, unknown>)[k], depth - 1)
    if (v !== undefined) out[k] = v
  }
  if (keys.length > BOUNDS.keys) out['…'] = `${keys.length - BOUNDS.keys} more keys`
  return out
}

function isActorRef(value: unknown): value is AnyActorRef {
  return typeof value === 'object' && value !== null && 'sessionId' in value && typeof (value as { send?: unknown }).send === 'function'
}

const definitions = new WeakMap<object, string>()

/**
 * The machine's definition as the Stately inspector reads it: its config as JSON, functions
 * replaced by `{ type: name }` (as `@statelyai/inspect` does). Computed once per machine.
 * Actors without a machine (promises, callbacks) get `{ id }`.
 */
export function definitionOf(actorRef: AnyActorRef): string {
  const config = (actorRef as unknown as { logic?: { config?: unknown } }).logic?.config
  if (!config || typeof config !== 'object') return JSON.stringify({ id: actorRef.id })
  let text = definitions.get(config)
  if (text === undefined) {
    text = JSON.stringify(config, (_key, v: unknown) => (typeof v === 'function' ? { type: v.name || 'anonymous' } : v))
    definitions.set(config, text)
  }
  return text
}

/** The machine id an actor runs (`updateRun`, `fileStatus` …), or the actor's own id. */
export function machineIdOf(actorRef: AnyActorRef): string {
  const config = (actorRef as unknown as { logic?: { config?: { id?: unknown } } }).logic?.config
  return typeof config?.id === 'string' ? config.id : actorRef.id
}

/** What of a snapshot is sent: status, state value, bounded context and output (never children or the machine). */
export function boundedSnapshot(snapshot: Snapshot<unknown>): Snapshot<unknown> {
  const s = snapshot as Snapshot<unknown> & { value?: unknown; context?: unknown }
  return {
    status: s.status,
    ...(s.value !== undefined ? { value: s.value } : {}),
    ...(s.context !== undefined ? { context: bounded(s.context) } : {}),
    ...(s.status === 'done' ? { output: bounded(s.output) } : {}),
    ...(s.status === 'error' ? { error: bounded(s.error) } : {}),
  } as Snapshot<unknown>
}

export const boundedEvent = (event: AnyEventObject): AnyEventObject => ({ ...(bounded(event) as object), type: String(event.type) })

interface Base { sessionId: string; rootId: string; seq: number; at: number }
const base = (b: Base) => ({ sessionId: b.sessionId, rootId: b.rootId, id: `${b.sessionId}.${b.seq}`, createdAt: String(b.at), _version: STATELY_INSPECT_VERSION })

/**
 * `withDefinition: false` leaves the machine's definition out: the sender has just sent it with
 * another actor of the same machine, and a receiver fills it in (infra/inspect/board.ts).
 */
export function actorMessage(b: Base & { actorRef: AnyActorRef; parentId: string | undefined; snapshot: Snapshot<unknown>; withDefinition?: boolean }): StatelyActorEvent {
  const name = b.actorRef.id === b.actorRef.sessionId ? machineIdOf(b.actorRef) : b.actorRef.id
  return { type: '@xstate.actor', ...base(b), name, definition: b.withDefinition === false ? undefined : definitionOf(b.actorRef), parentId: b.parentId, snapshot: boundedSnapshot(b.snapshot) }
}

/** The logic's machine config an actor runs (undefined for promise and callback actors): the key of its definition. */
export function configOf(actorRef: AnyActorRef): object | undefined {
  const config = (actorRef as unknown as { logic?: { config?: unknown } }).logic?.config
  return config && typeof config === 'object' ? config : undefined
}

export function eventMessage(b: Base & { event: AnyEventObject; sourceId: string | undefined }): StatelyEventEvent {
  return { type: '@xstate.event', ...base(b), event: boundedEvent(b.event), sourceId: b.sourceId }
}

export function snapshotMessage(b: Base & { event: AnyEventObject; snapshot: Snapshot<unknown> }): StatelySnapshotEvent {
  return { type: '@xstate.snapshot', ...base(b), event: boundedEvent(b.event), snapshot: boundedSnapshot(b.snapshot) }
}

/**
 * The message as JSON, at most MAX_MESSAGE_BYTES: an oversized one keeps its shape, with the
 * context (and event) replaced by a note of how big they were.
 */
export function encodeMessage(m: StatelyInspectionEvent): string {
  const text = JSON.stringify(m)
  if (Buffer.byteLength(text) <= MAX_MESSAGE_BYTES) return text
  const note = `left out: the message was ${Buffer.byteLength(text)} bytes (limit ${MAX_MESSAGE_BYTES})`
  const slim = {
    ...m,
    ...('snapshot' in m ? { snapshot: { status: m.snapshot.status, value: (m.snapshot as { value?: unknown }).value, context: { '…': note } } } : {}),
    ...('event' in m ? { event: { type: m.event.type } } : {}),
    ...(m.type === '@xstate.actor' ? { definition: JSON.stringify({ id: m.name, '…': note }) } : {}),
  }
  return JSON.stringify(slim)
}

const STRING_OR_UNDEFINED = (v: unknown): boolean => v === undefined || typeof v === 'string'

/**
 * Whether a parsed message has the shape of a StatelyInspectionEvent (what `upswarm inspect`
 * accepts from NATS and forwards); the reason when not, naming the field.
 */
export function checkStatelyInspectionEvent(m: unknown): { ok: true; event: StatelyInspectionEvent } | { ok: false; reason: string } {
  if (typeof m !== 'object' || m === null || Array.isArray(m)) return { ok: false, reason: 'not a JSON object' }
  const o = m as Record<string, unknown>
  for (const f of ['sessionId', 'createdAt', 'id', '_version'] as const) if (typeof o[f] !== 'string') return { ok: false, reason: `${f} must be a string` }
  if (!STRING_OR_UNDEFINED(o.rootId)) return { ok: false, reason: 'rootId must be a string or absent' }
  const eventOk = (e: unknown): boolean => typeof e === 'object' && e !== null && typeof (e as { type?: unknown }).type === 'string'
  const snapshotOk = (s: unknown): boolean => typeof s === 'object' && s !== null && typeof (s as { status?: unknown }).status === 'string'
  switch (o.type) {
    case '@xstate.actor':
      if (typeof o.name !== 'string') return { ok: false, reason: 'name must be a string' }
      if (!STRING_OR_UNDEFINED(o.definition)) return { ok: false, reason: 'definition must be a string (the machine config as JSON) or absent' }
      if (!STRING_OR_UNDEFINED(o.parentId)) return { ok: false, reason: 'parentId must be a string or absent' }
      if (!snapshotOk(o.snapshot)) return { ok: false, reason: 'snapshot must be an object with a status' }
      break
    case '@xstate.event':
      if (!eventOk(o.event)) return { ok: false, reason: 'event must be an object with a string type' }
      if (!STRING_OR_UNDEFINED(o.sourceId)) return { ok: false, reason: 'sourceId must be a string or absent' }
      break
    case '@xstate.snapshot':
      if (!eventOk(o.event)) return { ok: false, reason: 'event must be an object with a string type' }
      if (!snapshotOk(o.snapshot)) return { ok: false, reason: 'snapshot must be an object with a status' }
      break
    default:
      return { ok: false, reason: `type must be @xstate.actor, @xstate.event or @xstate.snapshot (got ${JSON.stringify(o.type)?.slice(0, 40)})` }
  }
  return { ok: true, event: m as StatelyInspectionEvent }
}
