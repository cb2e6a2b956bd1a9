// R-TRACKER: the tracker. One registry (shared through the PEER_BUCKET KV bucket, so several
// instances answer as one) behind three doors: a NATS micro service, HTTP(S) with BitTorrent
// announce/scrape and a JSON API, and the BitTorrent UDP protocol (R-TRACKER-PROTO).
import { randomUUID } from 'node:crypto'
import { once } from 'node:events'
import { readFile } from 'node:fs/promises'
import type { NatsConnection } from '@nats-io/transport-node'
import { errorMessage, UpswarmError } from '../../infra/errors.ts'
import { connectNats, type NatsAuth } from '../../infra/nats/connect.ts'
import { actorEventSubject, PEER_BUCKET_MAX_AGE_MS } from '../../infra/nats/names.ts'
import { clusterReplicas, openPeerBucket } from '../../infra/nats/resources.ts'
import { withRetry } from '../../infra/nats/retry.ts'
import { startHttpDoor } from '../../infra/tracker/http-server.ts'
import { startNatsDoor } from '../../infra/tracker/nats-service.ts'
import { RateLimiter, type RateLimitOptions } from '../../infra/tracker/rate-limit.ts'
import { PeerRegistry } from '../../infra/tracker/registry.ts'
import { startUdpDoor } from '../../infra/tracker/udp-server.ts'

export { createTrackerClient, type TrackerClient, type TrackerClientOptions, type TrackerPeer, type TrackerStatus, type DoorName } from './client.ts'
export { queryPeers } from '../../infra/tracker-client/index.ts'

export interface TrackerOptions {
  nc: NatsConnection
  /** 0 or absent: any free port. */
  httpPort?: number
  udpPort?: number
  host?: string
  https?: { cert: string | Buffer; key: string | Buffer }
  id?: string
  /** How long a peer stays listed after its last announce (default 180 s). */
  peerTtlMs?: number
  /** Re-announce interval told to peers (default a third of the TTL). */
  intervalMs?: number
  /** Per source address, HTTP and UDP; false turns it off (benchmarks). Default 100/s, burst 200. */
  rateLimit?: RateLimitOptions | false
  /** Per NATS identity (the subject's last token); false turns it off. Default 100/s, burst 200. */
  identityRateLimit?: RateLimitOptions | false
  maxPeers?: number
  /** Most peers one NATS identity lists, per product and in all (default 32 and 256). */
  maxPeersPerIdentity?: { product: number; total: number }
  /** Shared by instances behind one UDP address so their connection ids agree. */
  udpSecret?: Buffer
  replicas?: number
  log?: (msg: string) => void
}

export interface Tracker {
  id: string
  httpUrl: string
  udpUrl: string
  registry: PeerRegistry
  close(): Promise<void>
}

const DEFAULT_RATE: RateLimitOptions = { perSecond: 100, burst: 200 }

export async function startTracker(opts: TrackerOptions): Promise<Tracker> {
  const id = opts.id ?? `tracker-${randomUUID().slice(0, 8)}`
  const host = opts.host ?? '127.0.0.1'
  const log = opts.log ?? (() => {})
  const replicas = opts.replicas ?? (await clusterReplicas(opts.nc))
  // Right after a cluster starts the KV stream may still be electing a leader.
  const kv = await withRetry(() => openPeerBucket(opts.nc, replicas, PEER_BUCKET_MAX_AGE_MS), { attempts: 10 }).catch((err: unknown) => {
    throw new UpswarmError('UPSWARM_E_NATS', `tracker ${id}: cannot open the peer bucket: ${errorMessage(err)}; is JetStream enabled on the NATS servers?`, { cause: err })
  })
  const registry = new PeerRegistry({
    shared: { kv, nc: opts.nc },
    ...(opts.peerTtlMs !== undefined ? { peerTtlMs: opts.peerTtlMs } : {}),
    ...(opts.intervalMs !== undefined ? { intervalMs: opts.intervalMs } : {}),
    ...(opts.maxPeers !== undefined ? { maxPeers: opts.maxPeers } : {}),
    ...(opts.maxPeersPerIdentity !== undefined ? { maxPeersPerIdentity: opts.maxPeersPerIdentity } : {}),
    onError: (err) => log(`tracker ${id}: peer bucket: ${errorMessage(err)}`),
  })
  await registry.start()
  const limiter = opts.rateLimit === false ? undefined : new RateLimiter(opts.rateLimit ?? DEFAULT_RATE)
  const identityLimiter = opts.identityRateLimit === false ? undefined : new RateLimiter(opts.identityRateLimit ?? DEFAULT_RATE)
  const sweeper = setInterval(() => {
    limiter?.sweep(Date.now())
    identityLimiter?.sweep(Date.now())
  }, 10_000)
  sweeper.unref()

  const closers: (() => Promise<void>)[] = []
  const close = async (): Promise<void> => {
    clearInterval(sweeper)
    for (const c of closers.splice(0).reverse()) await c().catch((err: unknown) => log(`tracker ${id}: close: ${errorMessage(err)}`))
    await registry.close()
  }
  try {
    const nats = await startNatsDoor(opts.nc, registry, { id, limiter: identityLimiter })
    closers.push(nats.close)
    const http = await startHttpDoor({ registry, limiter, host, port: opts.httpPort ?? 0, ...(opts.https ? { https: opts.https } : {}) })
    closers.push(http.close)
    const udp = await startUdpDoor({ registry, limiter, host, port: opts.udpPort ?? 0, ...(opts.udpSecret ? { secret: opts.udpSecret } : {}) })
    closers.push(udp.close)
    const state = { state: 'listening', httpUrl: http.url, udpUrl: udp.url, peerTtlMs: registry.peerTtlMs, intervalMs: registry.intervalMs }
    opts.nc.publish(actorEventSubject('tracker', id), JSON.stringify(state))
    log(`tracker ${id}: ${http.url} ${udp.url}`)
    return {
      id,
      httpUrl: http.url,
      udpUrl: udp.url,
      registry,
      close: async () => {
        await close()
        if (!opts.nc.isClosed()) opts.nc.publish(actorEventSubject('tracker', id), JSON.stringify({ state: 'stopped' }))
      },
    }
  } catch (err) {
    await close()
    throw err instanceof UpswarmError ? err : new UpswarmError('UPSWARM_E_CONFIG', `tracker ${id}: cannot listen on ${host}: ${errorMessage(err)}; choose free ports`, { cause: err })
  }
}

export interface TrackerCliOptions extends NatsAuth {
  httpPort?: number
  udpPort?: number
  nats?: string | string[]
  host?: string
  id?: string
  /** Paths of a TLS certificate and key: serve HTTPS. */
  cert?: string
  key?: string
  peerTtl?: number
  interval?: number
}

/**
 * `upswarm tracker`: starts the tracker, prints one `READY {json}` line on stdout once every door
 * listens, and stops cleanly on SIGTERM or SIGINT.
 */
export async function runTrackerCli(o: TrackerCliOptions): Promise<void> {
  if ((o.cert === undefined) !== (o.key === undefined)) throw new UpswarmError('UPSWARM_E_CONFIG', 'tracker: --cert and --key go together')
  const https = o.cert && o.key ? { cert: await readFile(o.cert), key: await readFile(o.key) } : undefined
  const nc = await connectNats(o.nats, `upswarm-tracker${o.id ? `-${o.id}` : ''}`, o)
  let tracker: Tracker
  try {
    tracker = await startTracker({
      nc,
      ...(o.httpPort !== undefined ? { httpPort: o.httpPort } : {}),
      ...(o.udpPort !== undefined ? { udpPort: o.udpPort } : {}),
      ...(o.host !== undefined ? { host: o.host } : {}),
      ...(o.id !== undefined ? { id: o.id } : {}),
      ...(https ? { https } : {}),
      ...(o.peerTtl !== undefined ? { peerTtlMs: o.peerTtl } : {}),
      ...(o.interval !== undefined ? { intervalMs: o.interval } : {}),
      log: (m) => process.stderr.write(`${m}\n`),
    })
  } catch (err) {
    await nc.close()
    throw err
  }
  const ready = { role: 'tracker', pid: process.pid, id: tracker.id, trackerHttp: tracker.httpUrl, trackerUdp: tracker.udpUrl }
  process.stdout.write(`READY ${JSON.stringify(ready)}\n`)
  await Promise.race([once(process, 'SIGTERM'), once(process, 'SIGINT')])
  await tracker.close()
  await nc.drain()
}
