// Issue 17 item 2, a site: its own NATS (a leaf node in a JetStream domain of its own) holds
// mirrors of the core's streams of record, under the same names, so the site's servers, proxy and
// clients read releases, documents and file contents locally, and the WAN carries each message
// once per site. A mirror keeps serving what it holds while the WAN is down and catches up from
// where it stopped when the link returns (JetStream's own mirror, sourced through the core's
// domain API `$JS.<core>.API`). `mirrorStatus` is what an operator (and `upswarm mirrors`) reads.
import { jetstreamManager, StorageType, type StreamSourceInfo } from '@nats-io/jetstream'
import type { NatsConnection } from '@nats-io/transport-node'
import { UpswarmError } from '../errors.ts'
import { ensureAlertStream, ensureFleetStream, ensureStream, META_REPUBLISH, RELEASE_REPUBLISH } from './resources.ts'
import { withRetry } from './retry.ts'
import { META_STREAM, RELEASE_READ_STREAM, siteSubjectTransform, RELEASE_STREAM, SITE_MIRRORED, SITE_SOURCED } from './names.ts'

/**
 * The core's streams republish what they store (clients follow releases and signed statements
 * with plain subscriptions); a site's mirrors do the same in the site, where the leaf link carries
 * none of the core's republished subjects.
 */
const REPUBLISHED: Record<string, { src: string; dest: string }> = { [RELEASE_STREAM]: RELEASE_REPUBLISH, [META_STREAM]: META_REPUBLISH }

/** Creates, in the site's own domain (the connection's), a mirror of each of the core's streams of record. */
export async function ensureSiteMirrors(nc: NatsConnection, coreDomain: string): Promise<string[]> {
  return withRetry(async () => {
    const jsm = await jetstreamManager(nc)
    for (const name of SITE_MIRRORED) {
      await ensureStream(jsm, {
        // The object store's metadata messages carry `Nats-Rollup: sub`: a mirror that does not
        // allow rollups stops at the first one and never catches up (seen: chunks, no metadata).
        name, storage: StorageType.File, num_replicas: 1, allow_direct: true, allow_rollup_hdrs: true,
        mirror: { name, external: { api: `$JS.${coreDomain}.API`, deliver: '' } },
        ...(REPUBLISHED[name] ? { republish: REPUBLISHED[name] } : {}),
      })
    }
    // The readers' mirror (docs/ops.md), here of the site's own copy.
    await ensureStream(jsm, { name: RELEASE_READ_STREAM, storage: StorageType.File, num_replicas: 1, mirror: { name: RELEASE_STREAM } })
    // What the site's clients write (alerts, fleet reports) is stored here, also while the WAN
    // is down; the core sources it (`upswarm site add`, addSiteSources).
    for (const ensure of [ensureAlertStream, ensureFleetStream]) await ensure(jsm, 1)
    return [...SITE_MIRRORED, RELEASE_READ_STREAM]
  }, { attempts: 40, maxDelayMs: 500 })
}

/**
 * At the core (admin): the streams the sites' clients write to (alerts, fleet reports) source each
 * site's own copy through its domain API, so the notary and `upswarm fleet` see every site, and a
 * site cut off catches up when its link returns. Idempotent; returns what was added.
 */
export async function addSiteSources(nc: NatsConnection, siteDomains: string[]): Promise<string[]> {
  const jsm = await jetstreamManager(nc)
  const own = (await jsm.getAccountInfo()).domain
  const self = siteDomains.find((d) => d === own)
  if (self !== undefined) throw new UpswarmError('UPSWARM_E_CONFIG', `site add: ${self} is this NATS's own JetStream domain (the core's), not a site's: its streams would source themselves`)
  const added: string[] = []
  for (const name of SITE_SOURCED) {
    const have = (await jsm.streams.info(name)).config
    const sources = [...(have.sources ?? [])]
    for (const domain of siteDomains) {
      const api = `$JS.${domain}.API`
      if (sources.some((s) => s.external?.api === api)) continue
      // The site's domain as a fifth token (siteSubjectTransform): its reports never replace a core client's.
      sources.push({ name, external: { api, deliver: '' }, subject_transforms: [siteSubjectTransform(name, domain)] })
      added.push(`${name} ← ${domain}`)
    }
    if (sources.length !== (have.sources ?? []).length) await jsm.streams.update(name, { ...have, sources })
  }
  return added
}

export interface MirrorState {
  stream: string
  /** The stream it mirrors or sources, with the other domain's API when external. */
  source: string
  /** Who it hears from: "the core" (a site's mirror of it), "this domain" (a mirror of a local stream) or "site DOMAIN" (the core's source of a site). */
  origin: string
  messages: number
  lastSeq: number
  /** Messages the origin holds that this stream does not yet (JetStream's own count). */
  lag: number
  /** Milliseconds since it last heard from its origin; -1: never. */
  activeMs: number
  error?: string
}

/**
 * Every mirror stream in the connection's domain and every source of another domain (the core's
 * sources of the sites), with lag and last contact (`nats stream report`'s replication columns).
 */
export async function mirrorStatus(nc: NatsConnection): Promise<MirrorState[]> {
  const jsm = await jetstreamManager(nc)
  const out: MirrorState[] = []
  for await (const si of jsm.streams.list()) {
    const links = [
      ...(si.config.mirror ? [{ cfg: si.config.mirror, info: si.mirror, origin: si.config.mirror.external ? 'the core' : 'this domain' }] : []),
      ...(si.config.sources ?? []).flatMap((cfg) => {
        const domain = /^\$JS\.(.+)\.API$/.exec(cfg.external?.api ?? '')?.[1]
        // The server's source info names the external API too (the client's type omits it).
        const info = (si.sources as (StreamSourceInfo & { external?: { api?: string } })[] | undefined)?.find((x) => x.external?.api === cfg.external?.api && x.name === cfg.name)
        // A source the server reports nothing of is shown as never heard from, not left out.
        return domain ? [{ cfg, info, origin: `site ${domain}` }] : []
      }),
    ]
    for (const { cfg, info, origin } of links) {
      out.push({
        stream: si.config.name,
        source: `${cfg.name}${cfg.external?.api ? ` via ${cfg.external.api}` : ''}`,
        origin,
        messages: si.state.messages,
        lastSeq: si.state.last_seq,
        lag: info?.lag ?? 0,
        activeMs: !info || info.active < 0 ? -1 : Math.round(info.active / 1e6),
        ...(info?.error ? { error: `${info.error.description} (${info.error.err_code})` } : !info ? { error: 'the server reports no state of it' } : {}),
      })
    }
  }
  return out.sort((a, b) => a.stream.localeCompare(b.stream) || a.source.localeCompare(b.source))
}
