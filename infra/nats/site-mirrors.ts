// Issue 17 item 2, a site: its own NATS (a leaf node in a JetStream domain of its own) holds
// mirrors of the core's streams of record, under the same names, so the site's servers, proxy and
// clients read releases, documents and file contents locally, and the WAN carries each message
// once per site. A mirror keeps serving what it holds while the WAN is down and catches up from
// where it stopped when the link returns (JetStream's own mirror, sourced through the core's
// domain API `$JS.<core>.API`). `mirrorStatus` is what an operator (and `upswarm mirrors`) reads.
import { jetstreamManager, JetStreamApiCodes, JetStreamApiError, StorageType, type JetStreamManager, type StreamConfig } from '@nats-io/jetstream'
import type { NatsConnection } from '@nats-io/transport-node'
import { withRetry } from './retry.ts'
import { BLOB_BUCKET, FRESH_STREAM, META_STREAM, PRUNE_STREAM, RELEASE_READ_STREAM, RELEASE_STREAM } from './names.ts'

/** What a site mirrors from the core: everything its servers and clients read; alerts and peers stay the core's. */
export const SITE_MIRRORED = [RELEASE_STREAM, META_STREAM, FRESH_STREAM, PRUNE_STREAM, `OBJ_${BLOB_BUCKET}`] as const

async function ensureMirror(jsm: JetStreamManager, config: Partial<StreamConfig> & { name: string }): Promise<void> {
  try {
    await jsm.streams.info(config.name)
    return
  } catch (err) {
    if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound)) throw err
  }
  await jsm.streams.add(config)
}

/** Creates, in the site's own domain (the connection's), a mirror of each of the core's streams of record. */
export async function ensureSiteMirrors(nc: NatsConnection, coreDomain: string): Promise<string[]> {
  return withRetry(async () => {
    const jsm = await jetstreamManager(nc)
    for (const name of SITE_MIRRORED) {
      await ensureMirror(jsm, {
        // The object store's metadata messages carry `Nats-Rollup: sub`: a mirror that does not
        // allow rollups stops at the first one and never catches up (seen: chunks, no metadata).
        name, storage: StorageType.File, num_replicas: 1, allow_direct: true, allow_rollup_hdrs: true,
        mirror: { name, external: { api: `$JS.${coreDomain}.API`, deliver: '' } },
      })
    }
    // The readers' mirror (docs/ops.md), here of the site's own copy.
    await ensureMirror(jsm, { name: RELEASE_READ_STREAM, storage: StorageType.File, num_replicas: 1, mirror: { name: RELEASE_STREAM } })
    return [...SITE_MIRRORED, RELEASE_READ_STREAM]
  }, { attempts: 40, maxDelayMs: 500 })
}

export interface MirrorState {
  stream: string
  /** The stream it mirrors, with the core's domain API when external. */
  source: string
  messages: number
  lastSeq: number
  /** Messages the origin holds that this mirror does not yet (JetStream's own count). */
  lag: number
  /** Milliseconds since the mirror last heard from its origin; -1: never. */
  activeMs: number
  error?: string
}

/** Every mirror stream in the connection's domain, with its lag and last contact (`nats stream report`'s mirror columns). */
export async function mirrorStatus(nc: NatsConnection): Promise<MirrorState[]> {
  const jsm = await jetstreamManager(nc)
  const out: MirrorState[] = []
  for await (const si of jsm.streams.list()) {
    const m = si.mirror
    if (!si.config.mirror || !m) continue
    out.push({
      stream: si.config.name,
      source: `${si.config.mirror.name}${si.config.mirror.external?.api ? ` via ${si.config.mirror.external.api}` : ''}`,
      messages: si.state.messages,
      lastSeq: si.state.last_seq,
      lag: m.lag,
      activeMs: m.active < 0 ? -1 : Math.round(m.active / 1e6),
      ...(m.error ? { error: `${m.error.description} (${m.error.err_code})` } : {}),
    })
  }
  return out.sort((a, b) => a.stream.localeCompare(b.stream))
}
