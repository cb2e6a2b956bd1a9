// The inspection summary (issue 12 item 3): what a process's inspection publisher sent and what
// its budget made it leave out, published on the process's own inspection subject beside the
// Stately-shaped messages, so that nothing is lost without a count. It is not a Stately shape:
// `upswarm inspect` keeps it per process and does not forward it to the Stately inspector.

export const SUMMARY_TYPE = 'upswarm.inspect.summary'

export interface InspectionSummary {
  type: typeof SUMMARY_TYPE
  /** Milliseconds since the epoch, as a string (like the Stately messages' createdAt). */
  createdAt: string
  /** The budget: messages per second at most, this summary included. */
  budget: number
  /** Inspection events taken from the process's actors (created, event, snapshot). */
  taken: number
  /** Messages published, the summaries included. */
  sent: number
  /** Events received by actors that were not sent: the budget had no room for them. */
  droppedEvents: number
  /** Snapshots replaced by a newer one of the same actor before they could be sent. */
  coalesced: number
  /** Actors that ended before they could be announced while more waited than the budget let through. */
  droppedActors: number
  /**
   * Actors working for another (per-file actors) made while the budget was spent, so run without
   * inspection (infra/inspect/nats-inspector.ts, admitsWorker). Absent from older senders.
   */
  uninspected?: number
  /** The messages of those actors (their creation, events and snapshots), not sent. */
  droppedWithActors: number
  /** Messages still waiting when the process closed its inspection. */
  discardedAtClose: number
  /** Messages still waiting for the budget when this summary was sent. */
  waiting: number
  /** The most messages sent in one wall-clock second (the seconds of Date.now()). */
  busiestSecond: number
  /** Messages sent per wall-clock second, on average, from the first message's second to this one's. */
  meanPerSecond: number
}

/** Whether a parsed message is an inspection summary (not an inspection event). */
export const isInspectionSummary = (m: unknown): m is InspectionSummary =>
  typeof m === 'object' && m !== null && (m as { type?: unknown }).type === SUMMARY_TYPE && typeof (m as { sent?: unknown }).sent === 'number'
