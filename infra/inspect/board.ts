// What `upswarm inspect` knows of the live actors (issue 12 item 4): for each actor seen on
// `upswarm.inspect.>`, its process (role and identity), machine, definition, current state, the
// states it went through and its recent events. Bounded: the newest actors are kept, those that
// ended go first.
import type { StatelyInspectionEvent } from '@statelyai/inspect'
import type { InspectionSummary } from './summary.ts'

/** Actors kept; past this, ended actors are forgotten first, then the oldest. */
export const MAX_ACTORS = 500
/** States and events kept per actor. */
export const MAX_TRAIL = 40
export const MAX_EVENTS = 20

export interface ActorView {
  /** `<role>.<identity>`: the process the actor runs in. */
  process: string
  sessionId: string
  parentId?: string | undefined
  name: string
  /** The machine's config as JSON (from its `@xstate.actor` message); absent for actors seen only by snapshot. */
  definition?: string | undefined
  status: string
  value?: unknown
  context?: unknown
  /** The states it went through, in order (each as its JSON value). */
  trail: unknown[]
  events: { type: string; at: number }[]
  updatedAt: number
}

export class InspectionBoard {
  private readonly actors = new Map<string, ActorView>()
  /** Each process's latest inspection summary: what it sent and what its budget left out. */
  private readonly lastSummary = new Map<string, InspectionSummary>()
  /**
   * The newest definition of each machine per process (`<process>/<machine>`): a process sends it
   * with the first actor of a machine and once a minute after (DEFINITION_EVERY_MS); the actors in
   * between get it from here, and those seen before it arrived get it when it does.
   */
  private readonly definitions = new Map<string, string>()

  summarize(process: string, s: InspectionSummary): void {
    this.lastSummary.set(process, s)
  }

  summaries(): Record<string, InspectionSummary> {
    return Object.fromEntries(this.lastSummary)
  }

  /** Takes one message of `process`; returns the actor it changed. */
  apply(process: string, m: StatelyInspectionEvent): ActorView {
    const key = `${process}/${m.sessionId}`
    let a = this.actors.get(key)
    if (!a) {
      a = { process, sessionId: m.sessionId, name: m.sessionId, status: 'active', trail: [], events: [], updatedAt: 0 }
      this.actors.set(key, a)
      this.prune()
    }
    a.updatedAt = Number(m.createdAt) || Date.now()
    if (m.type === '@xstate.actor') {
      a.name = m.name
      const machine = `${process}/${m.name}`
      if (m.definition !== undefined) {
        if (!this.definitions.has(machine)) {
          for (const other of this.actors.values()) if (other.process === process && other.name === m.name && other.definition === undefined) other.definition = m.definition
        }
        this.definitions.set(machine, m.definition)
      }
      a.definition = m.definition ?? this.definitions.get(machine)
      a.parentId = m.parentId
      this.takeSnapshot(a, m.snapshot as { status?: string; value?: unknown; context?: unknown })
    } else if (m.type === '@xstate.snapshot') {
      this.takeSnapshot(a, m.snapshot as { status?: string; value?: unknown; context?: unknown })
      if (m.event.type) this.takeEvent(a, m.event.type, a.updatedAt)
    } else {
      this.takeEvent(a, m.event.type, a.updatedAt)
    }
    return a
  }

  list(): ActorView[] {
    return [...this.actors.values()]
  }

  private takeSnapshot(a: ActorView, s: { status?: string; value?: unknown; context?: unknown }): void {
    a.status = s.status ?? a.status
    if (s.context !== undefined) a.context = s.context
    if (s.value === undefined) return
    a.value = s.value
    const last = a.trail.at(-1)
    if (JSON.stringify(last) !== JSON.stringify(s.value)) {
      a.trail.push(s.value)
      if (a.trail.length > MAX_TRAIL) a.trail.shift()
    }
  }

  private takeEvent(a: ActorView, type: string, at: number): void {
    const last = a.events.at(-1)
    if (last && last.type === type && last.at === at) return
    a.events.push({ type, at })
    if (a.events.length > MAX_EVENTS) a.events.shift()
  }

  private prune(): void {
    while (this.actors.size > MAX_ACTORS) {
      let victim: string | undefined
      for (const [k, a] of this.actors) {
        if (a.status !== 'active') { victim = k; break }
      }
      this.actors.delete(victim ?? this.actors.keys().next().value!)
    }
  }
}
