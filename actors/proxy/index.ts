// R-PROXY: the upgrade-server proxy. Keeps the pool from heartbeats, assigns each request to
// one healthy, synced server by smooth weighted round-robin, forwards control requests, and
// hands clients a server to pull byte ranges from with K concurrent requests (R-ACCEL-1).
// Several proxies may run at once: they share requests through a queue group. Its life
// (heartbeats, service, doors, close) is the statechart machines/proxy.machine.ts.
import { randomUUID } from 'node:crypto'
import { jetstreamManager } from '@nats-io/jetstream'
import type { NatsConnection } from '@nats-io/transport-node'
import { z } from 'zod'
import { UpswarmError, errorMessage, isUpswarmError } from '../../infra/errors.ts'
import { PROXY_SERVICE, proxySubject, repoSubject, type RepoOp } from '../../infra/nats/names.ts'
import type { Service } from '@nats-io/services'
import { endpoint, request, startService } from '../../infra/nats/service.ts'
import { UUID_RE } from '../../infra/release/manifest.ts'
import { startGateway } from '../../infra/http/gateway.ts'
import { MAX_RANGE, type Assignment } from '../../infra/repo-client.ts'
import { MetaRequest, NodesRequest } from '../../infra/formats/meta-wire.ts'
import { newestRevision } from '../../infra/release/release-log.ts'
import { ReleaseCeiling, followHeartbeats } from './heartbeats.ts'
import { Pool } from './pool.ts'
import { natsGatewayBackend, type ForwardFrom } from './gateway-backend.ts'
import type { TrustStore } from '../../infra/release/trust.ts'
import { readRoots } from '../../infra/formats/meta-stream.ts'
import { startSftpGateway } from '../../infra/ssh/sftp-gateway.ts'
import { createActor, fromPromise, waitFor, type ActorOptions, type AnyActorLogic } from 'xstate'
import { HEAR_PERIODS, proxyMachine, type ProxyFailure } from '../../machines/proxy.machine.ts'
import { HEARTBEAT_MS } from '../../infra/nats/heartbeat.ts'

export interface ProxyOptions {
  nc: NatsConnection
  id?: string
  httpPort?: number
  httpHost?: string
  /** SFTP door (R-PROXY-PROTO's SSH): port (0: any free port); off when unset. */
  sshPort?: number
  /** Private host key text (loadOrCreateHostKey); required with sshPort. */
  sshHostKey?: string
  /** OpenSSH authorized_keys text: only these keys may log in (default: anyone may read). */
  sshAuthorizedKeys?: string
  /**
   * The products' pinned publisher keys (the trust file): the gateway and the SFTP door serve
   * only releases signed by them. Without it they serve no release.
   */
  trust?: TrustStore
  /** An XState inspection observer for the proxy's actor (live inspection, issue 12). */
  inspect?: ActorOptions<AnyActorLogic>['inspect']
  log?: (msg: string) => void
}

export interface Proxy {
  id: string
  pool: Pool
  httpUrl: string | undefined
  /** sftp://host:port of the SSH door, when started. */
  sshUrl: string | undefined
  /** Requests and errors per endpoint of its NATS service, as the service counts them (issue 16 item 5: metrics). */
  serviceStats(): Promise<Array<{ name: string; num_requests: number; num_errors: number }>>
  close(): Promise<void>
}


export interface StatsReply {
  proxy: string
  servers: ReturnType<Pool['view']>
}

const Product = z.string().regex(UUID_RE)
const Rev = z.number().int().min(1)
const FORWARD_ATTEMPTS = 3

export async function startProxy(opts: ProxyOptions): Promise<Proxy> {
  const { nc } = opts
  const id = opts.id ?? `proxy-${randomUUID().slice(0, 8)}`
  const log = opts.log ?? (() => {})
  const pool = new Pool()

  if (opts.sshPort !== undefined && !opts.sshHostKey) throw new UpswarmError('UPSWARM_E_CONFIG', 'the SSH door needs a host key (--ssh-host-key FILE; created when missing)')

  /** Forwards to a server `pick` assigns, not in `tried`; a failing server is marked and the next one tried. */
  const forwardVia = async (pick: (tried: Set<string>) => string | undefined, op: RepoOp, payload: unknown, tried: Set<string>): Promise<{ server: string; bytes: Uint8Array } | { lastErr: unknown }> => {
    let lastErr: unknown
    for (let attempt = 0; attempt < FORWARD_ATTEMPTS; attempt++) {
      const server = pick(tried)
      if (!server) break
      tried.add(server)
      try {
        return { server, bytes: await request(nc, repoSubject(server, op), payload, 5000) }
      } catch (err) {
        lastErr = err
        // The server answered with a definite error (unknown revision, bad request): pass it on.
        if (isUpswarmError(err) && !['UPSWARM_E_NO_SERVER', 'UPSWARM_E_TIMEOUT'].includes(err.code)) throw err
        pool.failed(server, (err as Error).message)
      }
    }
    return { lastErr }
  }
  const forwardFrom: ForwardFrom = async (op, product, rev, payload, tried) => {
    const out = await forwardVia((t) => pool.assign(product, rev, t), op, payload, tried)
    if ('bytes' in out) return out
    if (out.lastErr) throw out.lastErr
    const newest = pool.newest(product)
    if (newest > 0 && rev !== undefined && rev > newest) {
      throw new UpswarmError('UPSWARM_E_UNKNOWN_REVISION', `revision ${rev} of ${product} does not exist (the newest is ${newest})`)
    }
    throw new UpswarmError('UPSWARM_E_NO_SERVER',
      rev === undefined
        ? `no healthy repository server holds ${product}; check \`upswarm stats\``
        : `no healthy repository server holds revision ${rev} of ${product}; check \`upswarm stats\``)
  }
  /** docs/formats.md §2.2: format-2 requests go only to servers whose heartbeat lists format 2. */
  const forward2 = async (op: 'meta' | 'nodes', product: string | undefined, rev: number | undefined, payload: unknown): Promise<Uint8Array> => {
    const out = await forwardVia((t) => pool.assign2(product, rev, t), op, payload, new Set())
    if ('bytes' in out) return out.bytes
    if (out.lastErr) throw out.lastErr
    const newest = product === undefined ? 0 : pool.newest2(product)
    if (newest > 0 && rev !== undefined && rev > newest) {
      throw new UpswarmError('UPSWARM_E_UNKNOWN_REVISION', `format-2 revision ${rev} of ${product} does not exist (the newest is ${newest})`)
    }
    throw new UpswarmError('UPSWARM_E_NO_SERVER',
      `no healthy repository server that serves format 2 holds ${product === undefined ? 'it' : rev === undefined ? `a format-2 release of ${product}` : `format-2 revision ${rev} of ${product}`}; check \`upswarm stats\``)
  }
  const forward = async (op: RepoOp, product: string, rev: number | undefined, payload: unknown): Promise<Uint8Array> =>
    (await forwardFrom(op, product, rev, payload, new Set())).bytes

  // What the machine's steps opened, closed in reverse order by its `closeAll`.
  const closers: (() => Promise<void>)[] = []
  let service: Service | undefined
  const backend = natsGatewayBackend({ nc, pool, forward: forwardFrom, trust: opts.trust, log })
  const machine = proxyMachine.provide({
    actors: {
      followHeartbeats: fromPromise(async () => {
        const jsm = await jetstreamManager(nc)
        closers.push(followHeartbeats(nc, pool, new ReleaseCeiling((product) => newestRevision(jsm, product)), log, () => actor.send({ type: 'servers.heard' })))
        // A trust file that pins a root (format 3) takes rotations from UPSWARM_META (issue 10 item 7).
        opts.trust?.followRoots((from) => readRoots(nc, from))
      }),
      startService: fromPromise(async () => {
        service = await startService(nc, {
          name: PROXY_SERVICE,
          version: '1.0.0',
          description: 'upswarm server proxy (weighted round-robin director)',
          metadata: { id },
          queue: PROXY_SERVICE,
          endpoints: {
            revs: endpoint(proxySubject('revs'), z.object({ product: Product }),
              ({ product }) => forward('revs', product, undefined, { product })),
            manifest: endpoint(proxySubject('manifest'), z.object({ product: Product, rev: Rev }),
              ({ product, rev }) => forward('manifest', product, rev, { product, rev })),
            sha1s: endpoint(proxySubject('sha1s'), z.object({ product: Product, rev: Rev }),
              ({ product, rev }) => forward('sha1s', product, rev, { product, rev })),
            assign: endpoint(proxySubject('assign'),
              z.object({ product: Product, rev: Rev.optional(), exclude: z.array(z.string().max(64)).max(64).optional() }),
              async ({ product, rev, exclude }): Promise<Assignment> => {
                const server = pool.assign(product, rev, new Set(exclude ?? []))
                if (!server) throw new UpswarmError('UPSWARM_E_NO_SERVER', `no healthy repository server holds ${rev ? `revision ${rev} of ` : ''}${product}`)
                return { server, rangeSubject: repoSubject(server, 'range'), maxRange: MAX_RANGE }
              }),
            // docs/formats.md §1.8: signed documents and tree nodes, from a format-2 server.
            meta: endpoint(proxySubject('meta'), MetaRequest, (req) => forward2('meta', 'product' in req ? req.product : undefined, req.kind === 'release' ? req.rev : undefined, req)),
            nodes: endpoint(proxySubject('nodes'), NodesRequest, (req) => forward2('nodes', req.product, undefined, req)),
            stats: endpoint(proxySubject('stats'), z.object({}).passthrough(), async (): Promise<StatsReply> => ({ proxy: id, servers: pool.view() })),
          },
        })
        closers.push(async () => {
          await service?.stop().catch(() => {})
        })
      }),
      openGateway: fromPromise(async () => {
        const gateway = await startGateway({ port: opts.httpPort!, host: opts.httpHost ?? '127.0.0.1', backend, log })
        closers.push(() => gateway.close())
        return { url: gateway.url }
      }),
      openSftp: fromPromise(async () => {
        const sftp = await startSftpGateway({
          port: opts.sshPort!, host: opts.httpHost ?? '127.0.0.1', backend, hostKey: opts.sshHostKey!, log,
          ...(opts.sshAuthorizedKeys !== undefined ? { authorizedKeys: opts.sshAuthorizedKeys } : {}),
        })
        closers.push(() => sftp.close())
        return { url: sftp.url }
      }),
      closeAll: fromPromise(async () => {
        for (const close of closers.splice(0).reverse()) await close().catch((err: unknown) => log(`proxy ${id}: close: ${errorMessage(err)}`))
        pool.stop()
      }),
    },
  })
  const actor = createActor(machine, { input: { id, gateway: opts.httpPort !== undefined, sftp: opts.sshPort !== undefined, hearMs: HEAR_PERIODS * HEARTBEAT_MS }, ...(opts.inspect ? { inspect: opts.inspect } : {}) })
  actor.start()
  const snapshot = await waitFor(actor, (x) => x.matches('serving') || x.status === 'done', { timeout: Infinity })
  if (snapshot.status === 'done') throw proxyError(snapshot.context.failure!)
  const { httpUrl, sshUrl } = snapshot.context
  return {
    id, pool, httpUrl: httpUrl ?? undefined, sshUrl: sshUrl ?? undefined,
    serviceStats: async () => (await service?.stats())?.endpoints ?? [],
    close: async () => {
      actor.send({ type: 'stop' })
      await waitFor(actor, (x) => x.status === 'done', { timeout: Infinity })
    },
  }
}

/** The failed step's error as it was thrown when it is already ours, else one naming the step. */
function proxyError(f: ProxyFailure): UpswarmError {
  if (f.cause instanceof UpswarmError) return f.cause
  const nats = f.step === 'followingHeartbeats' || f.step === 'startingService'
  return new UpswarmError(nats ? 'UPSWARM_E_NATS' : 'UPSWARM_E_CONFIG', f.message, { cause: f.cause })
}
