// R-STATUS-3, issue 11 item 4: what administrators read of the alert stream, optionally for one
// product, from a start time. The listing reads stored messages by request (STREAM.MSG.GET with
// next_by_subj: no consumer, so nothing on the cluster can leave it waiting), up to the stream's
// end as of the call; with `follow`, an ordered consumer (ephemeral, nothing left behind) then
// delivers what is stored after that end, until the signal aborts.
import { DeliverPolicy, jetstream, jetstreamManager, type JetStreamManager, type MsgRequest, type StoredMsg } from '@nats-io/jetstream'
import type { NatsConnection } from '@nats-io/transport-node'
import { ALERT_STREAM, ALERT_SUBJECTS, alertSubject } from './names.ts'

export interface StoredAlert {
  seq: number
  /** When the stream stored it (ISO 8601). */
  time: string
  product: string
  /** The identity that sent it: the subject's fourth token, which the cluster's permissions bind. */
  from: string
  /** Issue 17: the site it came from (the core sources the sites' alerts), when not the core. */
  site?: string
  /** The alert as sent (JSON), or the raw text when it is not JSON. */
  body: unknown
}

export interface ReadAlertsOptions {
  product?: string
  sinceMs: number
  follow?: boolean
  signal?: AbortSignal
}

function alertOf(seq: number, subject: string, timeMs: number, body: () => unknown, text: () => string): StoredAlert {
  const tokens = subject.split('.')
  let parsed: unknown
  try {
    parsed = body()
  } catch {
    parsed = text()
  }
  return { seq, time: new Date(timeMs).toISOString(), product: tokens[2] ?? '', from: tokens[3] ?? '', ...(tokens[4] ? { site: tokens[4] } : {}), body: parsed }
}

/** The first message matching `filter` at or after `seq`, or null. */
function nextMatching(jsm: JetStreamManager, filter: string, seq: number): Promise<StoredMsg | null> {
  // The server takes next_by_subj on STREAM.MSG.GET (2.10); the client's type names only seq and last_by_subj.
  return jsm.streams.getMessage(ALERT_STREAM, { seq, next_by_subj: filter } as unknown as MsgRequest)
}

/**
 * The sequence to list from: the first matching message stored at or after `sinceMs`. The stream
 * stores in time order, so a binary search over sequences finds it in log2(messages) requests.
 */
async function startSeq(jsm: JetStreamManager, filter: string, first: number, last: number, sinceMs: number): Promise<number> {
  let lo = first
  let hi = last + 1
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2)
    const m = await nextMatching(jsm, filter, mid)
    if (!m || m.seq > last) hi = mid
    else if (m.time.getTime() >= sinceMs) hi = Math.min(mid, m.seq)
    else lo = m.seq + 1
  }
  return lo
}

export async function readAlerts(nc: NatsConnection, opts: ReadAlertsOptions, onAlert: (a: StoredAlert) => void): Promise<number> {
  const jsm = await jetstreamManager(nc, { checkAPI: false })
  // `>`: a site's alerts carry the site as a fifth token (siteSubjectTransform).
  const filter = opts.product ? alertSubject(opts.product, '>') : ALERT_SUBJECTS
  const { state } = await jsm.streams.info(ALERT_STREAM)
  const endSeq = state.last_seq
  let count = 0
  if (state.messages > 0) {
    let seq = await startSeq(jsm, filter, state.first_seq, endSeq, opts.sinceMs)
    while (seq <= endSeq && !opts.signal?.aborted) {
      const m = await nextMatching(jsm, filter, seq)
      if (!m || m.seq > endSeq) break
      onAlert(alertOf(m.seq, m.subject, m.time.getTime(), () => m.json(), () => m.string()))
      count++
      seq = m.seq + 1
    }
  }
  if (!opts.follow || opts.signal?.aborted) return count
  const consumer = await jetstream(nc).consumers.get(ALERT_STREAM, {
    filter_subjects: filter, deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: endSeq + 1,
  })
  const messages = await consumer.consume()
  const stop = (): void => void messages.stop()
  opts.signal?.addEventListener('abort', stop, { once: true })
  try {
    for await (const m of messages) {
      onAlert(alertOf(m.seq, m.subject, Math.floor(m.info.timestampNanos / 1_000_000), () => m.json(), () => m.string()))
      count++
    }
  } finally {
    opts.signal?.removeEventListener('abort', stop)
    stop()
  }
  return count
}
