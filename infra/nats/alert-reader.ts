// R-STATUS-3, issue 11 item 4: what administrators read of the alert stream. An ordered consumer
// (ephemeral, nothing left behind) from a start time, optionally for one product; without
// `follow` it stops at the stream's end as of the call, with `follow` it waits for new alerts
// until the signal aborts.
import { DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream'
import type { NatsConnection } from '@nats-io/transport-node'
import { ALERT_STREAM, ALERT_SUBJECTS, alertSubject } from './names.ts'

export interface StoredAlert {
  seq: number
  /** When the stream stored it (ISO 8601). */
  time: string
  product: string
  /** The identity that sent it: the subject's last token, which the cluster's permissions bind. */
  from: string
  /** The alert as sent (JSON), or the raw text when it is not JSON. */
  body: unknown
}

export interface ReadAlertsOptions {
  product?: string
  sinceMs: number
  follow?: boolean
  signal?: AbortSignal
}

export async function readAlerts(nc: NatsConnection, opts: ReadAlertsOptions, onAlert: (a: StoredAlert) => void): Promise<number> {
  const jsm = await jetstreamManager(nc, { checkAPI: false })
  const filter = opts.product ? alertSubject(opts.product, '*') : ALERT_SUBJECTS
  const info = await jsm.streams.info(ALERT_STREAM, { subjects_filter: filter })
  const endSeq = info.state.last_seq
  if (!opts.follow && (info.state.num_subjects ?? 0) === 0) return 0
  const consumer = await jetstream(nc).consumers.get(ALERT_STREAM, {
    filter_subjects: filter, deliver_policy: DeliverPolicy.StartTime, opt_start_time: new Date(opts.sinceMs).toISOString(),
  })
  const messages = await consumer.consume()
  const stop = (): void => void messages.stop()
  opts.signal?.addEventListener('abort', stop, { once: true })
  let count = 0
  try {
    if (!opts.follow) {
      // Nothing at or after the start time: no message will come to say so.
      const first = await consumer.info(true).catch(() => undefined)
      if (first && first.num_pending === 0) return 0
    }
    for await (const m of messages) {
      const tokens = m.subject.split('.')
      let body: unknown
      try {
        body = m.json()
      } catch {
        body = m.string()
      }
      onAlert({ seq: m.seq, time: new Date(Math.floor(m.info.timestampNanos / 1_000_000)).toISOString(), product: tokens[2] ?? '', from: tokens[3] ?? '', body })
      count++
      if (!opts.follow && (m.seq >= endSeq || m.info.pending === 0)) break
    }
  } finally {
    opts.signal?.removeEventListener('abort', stop)
    stop()
  }
  return count
}
