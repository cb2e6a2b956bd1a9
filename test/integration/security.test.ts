// Issue 10: nobody without a role can erase, forge or steer the repository. A real 3-node
// cluster with identities and TLS; the forbidden actions are built mechanically (every
// destructive JetStream API call × every stream × every role but admin, every subject that
// speaks for another identity, every service a role could impersonate) and each must be
// refused with NATS's permission error, while the allowed flows work with the same creds.
import { execFile } from 'node:child_process'
import { readFile, writeFile } from 'node:fs/promises'
import { promisify } from 'node:util'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { waitFor } from 'xstate'
import { jetstreamManager } from '@nats-io/jetstream'
import { createUser, encodeUser, fmtCreds, fromSeed } from '@nats-io/jwt'
import { connect, credsAuthenticator, type Msg } from '@nats-io/transport-node'
import { prune } from '../../actors/operator/prune.ts'
import { publish } from '../../actors/publisher/publish.ts'
import { startProxy, type Proxy } from '../../actors/proxy/index.ts'
import { startRepoServer, type RepoServer } from '../../actors/repo-server/index.ts'
import { startTracker, type Tracker } from '../../actors/tracker/index.ts'
import type { Authority } from '../../infra/auth/authority.ts'
import { permissionsFor } from '../../infra/auth/permissions.ts'
import { pushAccount } from '../../infra/auth/push.ts'
import { CLIENT_ACCOUNT_LIMITS } from '../../infra/auth/accounts.ts'
import type { NatsCluster } from '../../infra/cluster/nats-cluster.ts'
import { connectNats, type NatsConnection } from '../../infra/nats/connect.ts'
import { jetStreamAlertSink } from '../../infra/nats/alert-sink.ts'
import { fleetReportOf, publishFleetReport, readFleet } from '../../infra/nats/fleet.ts'
import { CLIENTS_ACCOUNT_TAG, kindTag, type Identity, type IdentityKind } from '../../infra/nats/identity.ts'
import {
  ALERT_STREAM, BLOB_BUCKET, CLIENT_JS_API_PREFIX, FLEET_STREAM, fleetSubject, release2Subject, FRESH_STREAM, LEASE_BUCKET, META_STREAM, PEER_BUCKET, PRUNE_LEASE_KEY, PRUNE_STREAM, RELEASE_READ_STREAM, RELEASE_STREAM, ROOT_SUBJECT,
  alertSubject, freshSubject, publishLeaseKey, pruneSubject, rolloutSubject,
  proxySubject, releasedSubject, releaseSubject, repoSubject, serverConsumer, serverMetaConsumer, serverHeartbeat, trackerSubject, INSPECT_ROLES, INSPECT_SUBJECTS, inspectSubject,
} from '../../infra/nats/names.ts'
import { requestJson } from '../../infra/nats/service.ts'
import { RepoClient } from '../../infra/repo-client.ts'
import { generatePublisherKey } from '../../infra/release/keys.ts'
import { followReleases } from '../../infra/release/release-log.ts'
import { decodeRelease } from '../../infra/release/manifest.ts'
import { TrustStore } from '../../infra/release/trust.ts'
import { PROJECT_ROOT } from '../../infra/cluster/nats-server-bin.ts'
import { newProduct, startOwnCluster, tempDir } from '../helpers/cluster.ts'
import { randomContent, writeTree } from '../helpers/trees.ts'

const exec = promisify(execFile)
const CLI = join(PROJECT_ROOT, 'bin', 'upswarm.cjs')

type Attempt = { who: string; what: string; run: (nc: NatsConnection) => Promise<void> }

/** Resolves with the NATS permission error the attempt got; fails the test if it got anything else. */
async function refusal(nc: NatsConnection, attempt: Attempt): Promise<Error & { subject?: string }> {
  try {
    await attempt.run(nc)
  } catch (err) {
    for (let e: unknown = err; e instanceof Error; e = e.cause) if (e.name === 'PermissionViolationError') return e
    throw new Error(`${attempt.who}: ${attempt.what}: failed, but not with a permission error: ${(err as Error).message}`)
  }
  throw new Error(`${attempt.who}: ${attempt.what}: was ACCEPTED`)
}

const requestAttempt = (subject: string, body = '{}') => async (nc: NatsConnection): Promise<void> => {
  await nc.request(subject, body, { timeout: 3000 })
}
/**
 * A publish the server refuses, for an identity that cannot hear its own inbox (a site's leaf
 * link): the permission error the server sends names the subject (a request would fail on the
 * inbox's subscription first, whatever the publish permission).
 */
const publishRefused = (subject: string, body = '{}') => async (nc: NatsConnection): Promise<void> => {
  const status = nc.status()
  const refused = (async (): Promise<Error | undefined> => {
    for await (const s of status) {
      if (s.type === 'error' && s.error instanceof Error && s.error.name === 'PermissionViolationError' && (s.error as Error & { subject?: string }).subject === subject) return s.error
    }
    return undefined
  })()
  nc.publish(subject, body)
  await nc.flush()
  const err = await Promise.race([refused, new Promise<undefined>((r) => setTimeout(() => r(undefined), 3000))])
  ;(status as { stop?: () => void }).stop?.()
  if (err) throw err
}
/** A subscription the server refuses: the refusal closes it with the permission error. */
const subscribe = (subject: string) => async (nc: NatsConnection): Promise<void> => {
  const sub = nc.subscribe(subject)
  await nc.flush()
  const closed = await Promise.race([sub.closed, new Promise<'open'>((r) => setTimeout(() => r('open'), 3000))])
  sub.unsubscribe()
  if (closed instanceof Error) throw closed
}

describe('security', () => {
  let dir: { path: string; cleanup: () => Promise<void> }
  let own: { cluster: NatsCluster; authority: Authority; connect(name: string, identity?: Identity): Promise<NatsConnection> }
  const conns = new Map<string, NatsConnection>()
  const key = generatePublisherKey()
  const product = newProduct()
  let server: RepoServer
  let proxy: Proxy
  let tracker: Tracker
  const ids: Record<Exclude<IdentityKind, 'admin'>, Identity> = {
    publisher: { kind: 'publisher', name: 'publisher' },
    server: { kind: 'server', name: 'sec-s1' },
    proxy: { kind: 'proxy', name: 'proxy' },
    tracker: { kind: 'tracker', name: 'tracker' },
    client: { kind: 'client', name: 'sec-c1' },
    notary: { kind: 'notary', name: 'notary' },
    // Issue 17: a site's leaf link, tried as a connection of its own (a stolen leaf creds file).
    leaf: { kind: 'leaf', name: 'sec-site' },
  }
  const conn = (kind: keyof typeof ids): NatsConnection => conns.get(kind)!
  // Every stream of the cluster and a subject each stores (the peer bucket last: it ages).
  const streams = [RELEASE_STREAM, RELEASE_READ_STREAM, ALERT_STREAM, `OBJ_${BLOB_BUCKET}`, META_STREAM, FRESH_STREAM, PRUNE_STREAM, FLEET_STREAM, `KV_${PEER_BUCKET}`]
  const streamSubjects = (): string[] => [releaseSubject(product), alertSubject(product, ids.client.name), `$O.${BLOB_BUCKET}.C.injected`, ROOT_SUBJECT,
    freshSubject(product), pruneSubject(product), fleetSubject(product, ids.client.name), `$KV.${PEER_BUCKET}.${product}.injected`]
  const messageCounts = async (): Promise<number[]> => {
    const jsm = await jetstreamManager(conns.get('admin')!)
    return Promise.all(streams.map(async (st) => (await jsm.streams.info(st)).state.messages))
  }
  /** What the admin, in UPSWARM, sees published on `subjects` while `run` runs. */
  /** Subjects on which UPSWARM saw a message during `run`; `mine` tells the attacker's messages from the roles' own traffic (a server's heartbeats). */
  const seenInUpswarm = async (subjects: string[], run: () => Promise<void>, mine: (m: Msg) => boolean = () => true): Promise<string[]> => {
    const admin = conns.get('admin')!
    const seen: string[] = []
    const watch = subjects.map((t) => admin.subscribe(t, { callback: (_e, m) => { if (mine(m)) seen.push(m.subject) } }))
    await admin.flush()
    await run()
    await admin.flush()
    for (const w of watch) w.unsubscribe()
    return seen
  }
  const sysConnect = async (name: string): Promise<NatsConnection> =>
    connectNats(own.cluster.urls, name, { creds: await own.authority.systemCredsFile(), tlsCa: own.authority.paths.caFile })

  beforeAll(async () => {
    dir = await tempDir('upswarm-security-')
    own = await startOwnCluster(dir.path)
    conns.set('admin', await own.connect('sec-admin'))
    for (const [kind, id] of Object.entries(ids)) conns.set(kind, await own.connect(`sec-${kind}`, id))
    const trustFile = join(dir.path, 'trust.json')
    await writeTree(join(dir.path, 'src'), { 'a.bin': randomContent(300_000), 'b.txt': 'b\n' })
    await publish({ nc: conn('publisher'), src: join(dir.path, 'src'), product, key, trust: trustFile, skipFeed: true })
    server = await startRepoServer({ nc: conn('server'), id: ids.server.name, dataDir: join(dir.path, 'server'), trust: await new TrustStore(trustFile).ready() })
    proxy = await startProxy({ nc: conn('proxy'), httpPort: 0 })
    tracker = await startTracker({ nc: conn('tracker'), id: 'sec' })
    await waitFor(server.actor, () => server.store.synced[product] === 1, { timeout: 30_000 })
  }, 120_000)

  afterAll(async () => {
    await tracker?.close()
    await proxy?.close()
    await server?.close()
    for (const nc of conns.values()) await nc.close().catch(() => {})
    await own?.cluster.stop()
    await dir?.cleanup()
  })

  it('security — anonymous, clear-text and expired connections are refused, each with what to do', async () => {
    await expect(connectNats(own.cluster.urls, 'sec-anon', { creds: '', tlsCa: own.authority.paths.caFile })).rejects.toMatchObject({ code: 'UPSWARM_E_AUTH', message: expect.stringMatching(/requires credentials: pass --creds/) })
    await expect(connectNats(own.cluster.urls, 'sec-clear', { creds: '', tlsCa: '' })).rejects.toThrow()
    const expired = await own.authority.issue({ kind: 'client', name: 'sec-expired' }, { ttlSeconds: -60 })
    await expect(connectNats(own.cluster.urls, 'sec-expired', { creds: expired.file, tlsCa: own.authority.paths.caFile }))
      .rejects.toMatchObject({ code: 'UPSWARM_E_AUTH', message: expect.stringMatching(/refused the credentials/) })
  })

  it('security — every forbidden action of every role is refused with the permission error, and nothing changed', async () => {
    const destructive = ['STREAM.DELETE', 'STREAM.PURGE', 'STREAM.UPDATE', 'STREAM.CREATE', 'STREAM.MSG.DELETE', 'STREAM.SNAPSHOT', 'STREAM.RESTORE']
    const attempts: Attempt[] = []
    for (const who of Object.keys(ids) as (keyof typeof ids)[]) {
      // The leaf identity hears no inbox: its attempts are publishes whose refusal names their subject.
      const request = who === 'leaf' ? publishRefused : requestAttempt
      for (const stream of streams) {
        for (const op of destructive) {
          // The tracker creates and updates its own peer bucket; nobody but admin deletes or purges anything.
          if (who === 'tracker' && stream === `KV_${PEER_BUCKET}` && (op === 'STREAM.CREATE' || op === 'STREAM.UPDATE')) continue
          attempts.push({ who, what: `${op} ${stream}`, run: request(`$JS.API.${op}.${stream}`) })
        }
        // Listing and reading the cluster's other assets is not part of any role's job.
        attempts.push({ who, what: `CONSUMER.LIST ${stream}`, run: request(`$JS.API.CONSUMER.LIST.${stream}`) })
      }
      for (const op of ['STREAM.LIST', 'STREAM.NAMES', 'ACCOUNT.PURGE', 'SERVER.REMOVE', 'META.LEADER.STEPDOWN']) {
        attempts.push({ who, what: op, run: request(`$JS.API.${op}`) })
      }
      // A server's durable consumer is its own: nobody else may pull, delete or replace it.
      if (who !== 'server') {
        for (const op of ['CONSUMER.DELETE', 'CONSUMER.MSG.NEXT', 'CONSUMER.DURABLE.CREATE', 'CONSUMER.CREATE']) {
          attempts.push({ who, what: `${op} of server ${ids.server.name}'s consumer`, run: request(`$JS.API.${op}.${RELEASE_STREAM}.${serverConsumer(ids.server.name)}`) })
          attempts.push({ who, what: `${op} of server ${ids.server.name}'s meta consumer`, run: request(`$JS.API.${op}.${META_STREAM}.${serverMetaConsumer(ids.server.name)}`) })
        }
      }
      if (who !== 'publisher') {
        attempts.push({ who, what: 'append a release', run: request(releaseSubject(product), 'junk') })
        attempts.push({ who, what: 'append a format-2 release', run: request(release2Subject(product), 'junk') })
        // Issue 16: only the publisher (`upswarm rollout`) and the notary (halts) append rollout statements.
        if (who !== 'notary') attempts.push({ who, what: 'append a rollout statement', run: request(rolloutSubject(product), 'junk') })
        attempts.push({ who, what: 'put a blob chunk', run: request(`$O.${BLOB_BUCKET}.C.forged`, 'junk') })
      }
      // Issue 11 item 8: only an operator (admin) prunes: records the range, takes the prune lease,
      // deletes blobs; the lease bucket's stream is nobody else's to change (publishes lease
      // under their own name only, below).
      attempts.push({ who, what: 'append a prune record', run: request(pruneSubject(product), JSON.stringify({ format: 1, product, through: 1 })) })
      attempts.push({ who, what: 'take the prune lease', run: request(`$KV.${LEASE_BUCKET}.${PRUNE_LEASE_KEY}`, '{}') })
      for (const op of destructive) attempts.push({ who, what: `${op} KV_${LEASE_BUCKET}`, run: request(`$JS.API.${op}.KV_${LEASE_BUCKET}`) })
      attempts.push({ who, what: `delete blob ${'a'.repeat(8)}… (purge its chunks)`, run: request(`$JS.API.STREAM.PURGE.OBJ_${BLOB_BUCKET}`, JSON.stringify({ filter: `$O.${BLOB_BUCKET}.C.x` })) })
      attempts.push({ who, what: "another publisher's publish lease", run: request(`$KV.${LEASE_BUCKET}.${publishLeaseKey('sec-other-publisher', 'x')}`, '{}') })
      // The command itself, as each role in UPSWARM (a client machine has no JetStream API to try it with).
      if (who !== 'client') attempts.push({ who, what: 'upswarm prune --keep 1', run: async (nc) => { await prune({ nc, product, keep: 1, trust: join(dir.path, 'trust.json') }) } })
      // Issue 10 item 7: only the root holder (admin) appends a root, only the notary a fresh statement.
      attempts.push({ who, what: 'append a root', run: request(ROOT_SUBJECT, 'junk') })
      if (who !== 'notary') attempts.push({ who, what: 'append a fresh statement', run: request(freshSubject(product), 'junk') })
      if (who !== 'tracker') attempts.push({ who, what: 'write the peer bucket', run: request(`$KV.${PEER_BUCKET}.${product}.00`, '{}') })
      // Heartbeats only on one's own subject (servers); nobody else.
      attempts.push({ who, what: "another server's heartbeat", run: request(serverHeartbeat('s-real'), '{}') })
      // Issue 17: the notary follows the alert stream's republish; only the server writes there.
      attempts.push({ who, what: 'forge a stored alert', run: request(`upswarm.alerted.${product}.${ids.client.name}`, '{}') })
      if (who !== 'client') {
        attempts.push({ who, what: 'an alert', run: request(alertSubject(product, ids.client.name), '{}') })
        // Issue 16 item 3: a fleet report is a client machine's, on its own subject.
        attempts.push({ who, what: "a client's fleet report", run: request(fleetSubject(product, ids.client.name), '{}') })
      }
      // Only admin reads the fleet view (`upswarm fleet`).
      attempts.push({ who, what: 'read the fleet view', run: request(`$JS.API.DIRECT.GET.${FLEET_STREAM}.${fleetSubject(product, ids.client.name)}`, '') })
      attempts.push({ who, what: 'read a fleet report', run: request(`$JS.API.STREAM.MSG.GET.${FLEET_STREAM}`, JSON.stringify({ last_by_subj: fleetSubject(product, ids.client.name) })) })
      attempts.push({ who, what: 'follow the fleet reports', run: subscribe('upswarm.fleet.>') })
      // Impersonating a service: answering what the proxy, tracker or another server answers.
      if (who !== 'proxy') attempts.push({ who, what: "serve the proxy's subjects", run: subscribe('upswarm.proxy.>') })
      if (who !== 'tracker') attempts.push({ who, what: "serve the tracker's subjects", run: subscribe('upswarm.tracker.>') })
      attempts.push({ who, what: "serve another server's subjects", run: subscribe(`${repoSubject('s-real', 'range')}`) })
      // Another identity's inbox: its replies and deliveries.
      attempts.push({ who, what: "read another client's inbox", run: subscribe('_INBOX.client.sec-c2.>') })
      attempts.push({ who, what: 'read every inbox', run: subscribe('_INBOX.>') })
      attempts.push({ who, what: "the system account's subjects", run: request('$SYS.REQ.CLAIMS.UPDATE', 'x') })
      // Issue 12: inspection only as oneself, in one's own role; only admin reads it.
      const ownRoles: Record<string, readonly string[]> = { server: ['repo-server'], proxy: ['proxy'], tracker: ['tracker'], client: ['daemon', 'updater'], publisher: ['publisher'] }
      for (const role of INSPECT_ROLES) {
        attempts.push({ who, what: `inspection as another ${role}`, run: request(inspectSubject(role, 'sec-other'), '{}') })
        if (!(ownRoles[who] ?? []).includes(role)) attempts.push({ who, what: `inspection under its own name as a ${role}`, run: request(inspectSubject(role, ids[who].name), '{}') })
      }
      attempts.push({ who, what: 'read the inspection subjects', run: subscribe(INSPECT_SUBJECTS) })
    }
    // Client X speaking as client Y.
    for (const [what, subject] of [
      ['an alert as another client', alertSubject(product, 'sec-c2')],
      ["another client's fleet entry", fleetSubject(product, 'sec-c2')],
      ["another client's fleet entry of another product", fleetSubject(newProduct(), 'sec-c2')],
      ['a tracker announce as another client', trackerSubject('announce', 'sec-c2')],
      ['a peer query as another client', trackerSubject('peers', 'sec-c2')],
      ['daemon events as another client', 'upswarm.events.daemon.sec-c2'],
      ["a forged update run's inspection as another client", inspectSubject('updater', 'sec-c2')],
    ] as const) attempts.push({ who: 'client', what, run: requestAttempt(subject, '{}') })
    attempts.push({ who: 'server', what: 'a heartbeat as another server', run: requestAttempt(serverHeartbeat('sec-s2'), '{}') })
    // Issue 17: a site's leaf identity reaches the core's JetStream only through a domain API, and there only to create ephemeral consumers of what it mirrors.
    for (const stream of streams) {
      for (const op of ['STREAM.DELETE', 'STREAM.PURGE', 'STREAM.UPDATE', 'STREAM.MSG.DELETE', 'CONSUMER.LIST']) {
        attempts.push({ who: 'leaf', what: `${op} ${stream} through the core's domain API`, run: publishRefused(`$JS.core.API.${op}.${stream}`) })
      }
    }
    attempts.push({ who: 'leaf', what: "a server's durable consumer through the core's domain API", run: publishRefused(`$JS.core.API.CONSUMER.CREATE.${RELEASE_STREAM}.${serverConsumer(ids.server.name)}`) })
    attempts.push({ who: 'leaf', what: "another site's domain API", run: subscribe('$JS.other-site.API.>') })

    const admin = conns.get('admin')!
    const jsm = await jetstreamManager(admin)
    const before = await Promise.all(streams.map(async (s) => (await jsm.streams.info(s)).state.messages))
    const results = await Promise.allSettled(attempts.map((a) => refusal(conns.get(a.who)!, a)))
    const accepted = results.flatMap((r) => (r.status === 'rejected' ? [String((r.reason as Error).message)] : []))
    expect(accepted).toEqual([])
    expect(attempts.length).toBeGreaterThanOrEqual(100)
    process.stdout.write(`security: ${attempts.length} forbidden actions tried, ${accepted.length} accepted\n`)
    // Nothing changed: every stream is there with the same messages (the peer bucket may age).
    const after = await Promise.all(streams.map(async (s) => (await jsm.streams.info(s)).state.messages))
    expect(after.slice(0, -1)).toEqual(before.slice(0, -1))
  })

  it('security — each role publishes inspection under its own role and name, and admin reads all of it on upswarm.inspect.>, clients across the account boundary', async () => {
    const own = [['server', inspectSubject('repo-server', ids.server.name)], ['proxy', inspectSubject('proxy', ids.proxy.name)], ['tracker', inspectSubject('tracker', ids.tracker.name)],
      ['client', inspectSubject('daemon', ids.client.name)], ['client', inspectSubject('updater', ids.client.name)], ['publisher', inspectSubject('publisher', ids.publisher.name)]] as const
    // Awaited message by message: a flush of admin's connection does not wait for what another
    // node (or the CLIENTS account) is still routing to it.
    const seen = new Set<string>()
    let all!: () => void
    const arrived = new Promise<void>((resolve) => { all = resolve })
    const sub = conns.get('admin')!.subscribe(INSPECT_SUBJECTS, {
      callback: (_e, m) => {
        if (m.string() !== '{"type":"@xstate.event"}') return
        seen.add(m.subject)
        if (seen.size === own.length) all()
      },
    })
    await conns.get('admin')!.flush()
    try {
      // Core NATS drops what a node publishes before admin's interest has reached it over the
      // cluster's routes, so each missing subject is published again until it arrives (bounded:
      // 50 rounds of 200 ms).
      for (let round = 0; round < 50 && seen.size < own.length; round++) {
        for (const [who, subject] of own) if (!seen.has(subject)) conn(who).publish(subject, '{"type":"@xstate.event"}')
        for (const [who] of own) await conn(who).flush()
        await Promise.race([arrived, new Promise((resolve) => setTimeout(resolve, 200))])
      }
    } finally {
      sub.unsubscribe()
    }
    expect([...seen].sort()).toEqual(own.map(([, subject]) => subject).sort())
  })

  it('security — a request whose reply subject names a stream operation or another identity\'s subject makes no service publish there', async () => {
    const admin = conns.get('admin')!
    const client = conn('client')
    const jsm = await jetstreamManager(admin)
    const targets = [
      `$JS.API.STREAM.DELETE.${RELEASE_STREAM}`, `$JS.API.STREAM.PURGE.OBJ_${BLOB_BUCKET}`, `$JS.API.STREAM.PURGE.${ALERT_STREAM}`,
      `$JS.API.CONSUMER.DELETE.${RELEASE_STREAM}.${serverConsumer(ids.server.name)}`, releaseSubject(product), alertSubject(product, 'sec-c2'),
    ]
    // Our services. (JetStream's own API answers whatever reply subject a request names too: the
    // next test shows that a client's answer stays in CLIENTS.)
    const services = [proxySubject('revs'), repoSubject(ids.server.name, 'revs'), trackerSubject('peers', ids.client.name)]
    // The admin sees whatever lands on the targets.
    const landed: string[] = []
    const watch = targets.map((t) => admin.subscribe(t, { callback: (_e, m) => { landed.push(m.subject) } }))
    await admin.flush()
    const before = await Promise.all([RELEASE_STREAM, `OBJ_${BLOB_BUCKET}`, ALERT_STREAM].map(async (st) => (await jsm.streams.info(st)).state.messages))
    for (const service of services) {
      for (const target of targets) {
        // Both a body the service rejects (an error reply) and one it answers.
        client.publish(service, 'not json', { reply: target })
        client.publish(service, JSON.stringify({ product }), { reply: target })
      }
    }
    await client.flush()
    // Each service has handled what came before once it answers a proper request.
    await new RepoClient(client).revisions(product)
    await requestJson(client, repoSubject(ids.server.name, 'revs'), { product })
    await requestJson(client, trackerSubject('peers', ids.client.name), { product })
    await admin.flush()
    for (const w of watch) w.unsubscribe()
    expect(landed).toEqual([])
    const after = await Promise.all([RELEASE_STREAM, `OBJ_${BLOB_BUCKET}`, ALERT_STREAM].map(async (st) => (await jsm.streams.info(st)).state.messages))
    expect(after).toEqual(before)
    expect((await jsm.consumers.info(RELEASE_STREAM, serverConsumer(ids.server.name))).name).toBe(serverConsumer(ids.server.name))
    process.stdout.write(`security: ${services.length * targets.length * 2} reply-subject attacks tried, ${landed.length} landed\n`)
  })

  it('security — a client naming a stream subject as the reply of its JetStream API calls or alert publishes gets nothing stored: the answer stays in CLIENTS', async () => {
    const client = conn('client')
    // Every JetStream API call a client may make, made concrete, and its alert publish (the PubAck
    // answers the reply subject), each aimed at every subject a stream stores.
    const apiCalls = permissionsFor(ids.client).pub.allow.filter((s) => s.startsWith(`${CLIENT_JS_API_PREFIX}.`)).map((s) => s.endsWith('.>')
      ? { subject: `${s.slice(0, -2)}.${freshSubject(product)}`, body: '' }
      : { subject: s, body: JSON.stringify({ seq: 1 }) })
    expect(apiCalls.length).toBeGreaterThanOrEqual(3)
    // Each call works when asked properly: an answer (a message or "not found") comes back.
    for (const call of apiCalls) expect((await client.request(call.subject, call.body, { timeout: 5000 })).subject).toBeTruthy()
    const injectionProduct = newProduct()
    const calls = [...apiCalls, { subject: alertSubject(injectionProduct, ids.client.name), body: '{}' }]
    const targets = streamSubjects()
    const before = await messageCounts()
    const landed = await seenInUpswarm(targets, async () => {
      for (const call of calls) for (const target of targets) client.publish(call.subject, call.body, { reply: target })
      await client.flush()
      // The alerts themselves are stored (one per target): once all are, every answer was sent.
      const jsm = await jetstreamManager(conns.get('admin')!)
      await expect.poll(async () => (await jsm.streams.info(ALERT_STREAM, { subjects_filter: alertSubject(injectionProduct, ids.client.name) })).state.messages, { timeout: 10_000 })
        .toBe(targets.length)
      for (const call of apiCalls) await client.request(call.subject, call.body, { timeout: 5000 })
    })
    expect(landed).toEqual([])
    const after = await messageCounts()
    const stored = after.slice(0, -1).map((n, i) => n - before[i]!)
    // Nothing stored anywhere but the client's own alerts on their own subject.
    expect(stored).toEqual(streams.slice(0, -1).map((st) => (st === ALERT_STREAM ? targets.length : 0)))
    process.stdout.write(`security: ${calls.length * targets.length} JetStream reply-subject injections tried (${calls.length} calls × ${targets.length} stream subjects), ${landed.length} stored\n`)
  })

  it('security — a client machine reaches nothing of UPSWARM but what CLIENTS imports, even with permissions that allow everything', async () => {
    // A user of CLIENTS allowed every subject: what the account alone lets through.
    const file = JSON.parse(await readFile(own.authority.paths.file, 'utf8')) as { clients: { signingSeed: string } }
    const user = createUser()
    const jwt = await encodeUser('sec-wide', user, own.authority.accountPublicKeys.clients, {
      pub: { allow: ['>'] }, sub: { allow: ['>'] }, tags: [kindTag('client'), CLIENTS_ACCOUNT_TAG],
    }, { signer: fromSeed(new TextEncoder().encode(file.clients.signingSeed)) })
    const creds = join(dir.path, 'sec-wide.creds')
    await writeFile(creds, fmtCreds(jwt, user), { mode: 0o600 })
    const wide = await connectNats(own.cluster.urls, 'sec-wide', { creds, tlsCa: own.authority.paths.caFile })
    try {
      const destructive = streams.flatMap((st) => ['STREAM.DELETE', 'STREAM.PURGE', 'STREAM.MSG.DELETE', 'STREAM.UPDATE'].map((op) => `$JS.API.${op}.${st}`))
      // Alerts and fleet reports are imported (a service): only permissions bind them to a client's own name.
      const forged = [...streamSubjects().filter((sub) => !sub.startsWith('upswarm.alert.') && !sub.startsWith('upswarm.fleet.')), serverHeartbeat(ids.server.name), releasedSubject(product), `${CLIENT_JS_API_PREFIX}.STREAM.DELETE.${RELEASE_STREAM}`,
        inspectSubject('proxy', 'sec-wide'), inspectSubject('repo-server', ids.server.name)]
      const before = await messageCounts()
      const landed = await seenInUpswarm([...forged, ...destructive], async () => {
        for (const subject of forged) wide.publish(subject, 'junk')
        // CLIENTS has no JetStream: its own $JS.API says so; the import covers reads only.
        for (const subject of destructive) expect((await wide.request(subject, '{}', { timeout: 3000 })).string()).toMatch(/not enabled for account/i)
        await wide.flush()
        await expect(wide.request(`${CLIENT_JS_API_PREFIX}.STREAM.PURGE.${RELEASE_STREAM}`, '{}', { timeout: 3000 })).rejects.toThrow(/no responders/i)
      }, (m) => ['junk', '{}'].includes(m.string()))
      expect(landed).toEqual([])
      const after = await messageCounts()
      expect(after.slice(0, -1)).toEqual(before.slice(0, -1))
      // Nor does it hear what UPSWARM does not export: a role's events.
      const overheard: string[] = []
      const sub = wide.subscribe('upswarm.events.>', { callback: (_e, m) => { overheard.push(m.subject) } })
      await wide.flush()
      conns.get('admin')!.publish('upswarm.events.proxy.sec-overheard', '{}')
      await conns.get('admin')!.flush()
      await wide.flush()
      sub.unsubscribe()
      expect(overheard).toEqual([])
      process.stdout.write(`security: a CLIENTS user allowed everything: ${forged.length + destructive.length + 1} publishes and API calls on UPSWARM subjects it does not import, ${landed.length} reached UPSWARM\n`)
    } finally {
      await wide.close()
    }
  })

  it('security — client machines exhaust only the CLIENTS account\'s own limits: roles keep connecting and subscribing', async () => {
    const sys = await sysConnect('sec-sys-limits')
    const extra: NatsConnection[] = []
    try {
      // The operator sees the fleet's connections through the system account, one account at a time.
      const clientConns = async (): Promise<number> => {
        let n = 0
        for await (const m of await sys.requestMany(`$SYS.REQ.ACCOUNT.${own.authority.accountPublicKeys.clients}.CONNZ`, '{}', { strategy: 'timer', maxWait: 1000 })) {
          n += (m.json<{ data?: { num_connections?: number } }>().data?.num_connections ?? 0)
        }
        return n
      }
      const open = await clientConns()
      expect(open).toBeGreaterThanOrEqual(1)
      const { jwt } = await own.authority.setClientLimits({ conn: open + 2 })
      await pushAccount(sys, jwt)
      const issued = (await own.authority.issue({ kind: 'client', name: 'sec-many' })).file
      // All on one node, which then counts them itself (other nodes' counts reach it by events).
      for (let i = 0; i < 2; i++) extra.push(await connectNats(own.cluster.urls[0], `sec-many-${i}`, { creds: issued, tlsCa: own.authority.paths.caFile }))
      // Plain nats.js, once: a refused first connect would otherwise go round the servers the cluster
      // advertises. The server answers -ERR 'maximum account active connections exceeded'; nats.js
      // reports only that the connect did not complete.
      const refused = await connect({
        servers: own.cluster.urls[0], name: 'sec-many-over', authenticator: credsAuthenticator(await readFile(issued)), tls: { caFile: own.authority.paths.caFile },
        ignoreClusterUpdates: true, maxReconnectAttempts: 0, timeout: 3000,
      }).then(async (nc) => { await nc.close(); return 'connected' }, (err: Error) => err.message)
      expect(refused).not.toBe('connected')
      expect(await clientConns()).toBe(open + 2)
      // UPSWARM is untouched: a role still connects, subscribes and reads its streams; clients already in keep working.
      const role = await own.connect('sec-role-after-clients', { kind: 'proxy', name: 'proxy' })
      const subs = Array.from({ length: 300 }, (_, i) => role.subscribe(`upswarm.proxy.sec-${i}`))
      await role.flush()
      expect(subs.every((s) => !s.isClosed())).toBe(true)
      await role.close()
      expect((await new RepoClient(extra[0]!).revisions(product)).revs.length).toBeGreaterThan(0)
      process.stdout.write(`security: CLIENTS limited to ${open + 2} connections: ${extra.length} more connected, the next refused (${refused}), a role connected and subscribed 300 times\n`)
    } finally {
      for (const nc of extra) await nc.close()
      await pushAccount(sys, (await own.authority.setClientLimits({ conn: CLIENT_ACCOUNT_LIMITS.conn })).jwt)
      await sys.close()
    }
  })

  it('security — the allowed flows work with the same creds: sync, serve through the proxy, init, watch, alert, fleet report, announce', async () => {
    const client = conn('client')
    // The proxy hands out manifests the server synced; the client verifies them.
    const revs = await new RepoClient(client).revisions(product)
    expect(revs.revs.map((r) => r.rev)).toEqual([1])
    // init as a client machine, through the CLI, with its creds and the cluster's CA.
    const clientCreds = (await own.authority.issue({ kind: 'client', name: 'sec-cli' })).file
    const wc = join(dir.path, 'wc')
    const { stdout } = await exec(process.execPath, [CLI, 'init', wc, '--product', product, '--pubkey', key.publicKey, '--json',
      '--nats', own.cluster.urls.join(','), '--creds', clientCreds, '--tls-ca', own.authority.paths.caFile], { env: { ...process.env, UPSWARM_TRACKER: '', UPSWARM_BOOTSTRAP: '' } })
    expect(JSON.parse(stdout)).toMatchObject({ to: 1, bytesFromServers: 300_002 })
    // watch: the client follows the release stream without any consumer of its own.
    const seen: number[] = []
    const follower = await followReleases(client, product, (bytes) => { seen.push(decodeRelease(bytes, key.publicKey, 'stream').manifest.rev) })
    await writeTree(join(dir.path, 'src'), { 'b.txt': 'b2\n' })
    await publish({ nc: conn('publisher'), src: join(dir.path, 'src'), product, key, trust: join(dir.path, 'trust.json'), skipFeed: true })
    await expect.poll(() => seen, { timeout: 15_000 }).toEqual([1, 2])
    await follower.stop()
    // alerts under its own name; announces to the tracker under its own name.
    await jetStreamAlertSink(client).publish({ product, clientId: ids.client.name, path: 'b.txt', rev: 1, targetRev: 2 })
    const alerts = await jetstreamManager(conns.get('admin')!)
    const last = await alerts.streams.getMessage(ALERT_STREAM, { last_by_subj: alertSubject(product, ids.client.name) })
    expect(last?.json()).toMatchObject({ clientId: ids.client.name, path: 'b.txt' })
    // Issue 16 item 3: its fleet report under its own name, which admin reads.
    const report = fleetReportOf({ product, client: ids.client.name, rev: 2, stage: 1234, health: { state: 'ok' }, upswarm: '0.0.0', role: 'update', seq: 1, sentAt: new Date().toISOString() })
    await publishFleetReport(client, report)
    expect(await readFleet(conns.get('admin')!, product)).toMatchObject([{ client: ids.client.name, rev: 2, stage: 1234 }])
    const announced = await requestJson<{ peers: unknown[] }>(client, trackerSubject('announce', ids.client.name), {
      product, rev: 2, peerId: 'ab'.repeat(20), ip: '127.0.0.1', port: 4000, event: 'started',
    })
    expect(announced).toHaveProperty('peers')
  })

  it('security — `upswarm creds issue` mints a working client identity and `creds revoke` cuts it off, as an operator runs them', async () => {
    // The deployment directory as `up` leaves it: auth/ and endpoints.json.
    await writeFile(join(dir.path, 'endpoints.json'), JSON.stringify({ nats: own.cluster.urls, tlsCa: own.authority.paths.caFile }))
    const cli = async (...args: string[]): Promise<Record<string, unknown>> =>
      JSON.parse((await exec(process.execPath, [CLI, 'creds', ...args, '--dir', dir.path, '--json'])).stdout) as Record<string, unknown>
    const issued = await cli('issue', '--client', 'sec-cli-revoked', '--ttl-days', '30')
    expect(issued).toMatchObject({ kind: 'client', name: 'sec-cli-revoked' })
    expect(Date.parse(String(issued.expires)) - Date.now()).toBeGreaterThan(29 * 24 * 3600 * 1000)
    const nc = await connectNats(own.cluster.urls, 'sec-cli-client', { creds: String(issued.file), tlsCa: own.authority.paths.caFile })
    expect((await new RepoClient(nc).revisions(product)).revs.length).toBeGreaterThan(0)
    await nc.close()
    expect(await cli('revoke', 'sec-cli-revoked')).toMatchObject({ revoked: [issued.publicKey] })
    await expect(connectNats(own.cluster.urls, 'sec-cli-client-again', { creds: String(issued.file), tlsCa: own.authority.paths.caFile }))
      .rejects.toMatchObject({ code: 'UPSWARM_E_AUTH' })
    const listed = (await exec(process.execPath, [CLI, 'creds', 'ls', '--dir', dir.path])).stdout
    expect(listed).toMatch(/client\s+sec-cli-revoked\s+CLIENTS\s+\S+ issued .* REVOKED/)
    expect(listed).toMatch(/^accounts: UPSWARM A\S+, CLIENTS A\S+$/m)
  })

  it('security — a revoked client is cut off at once; the others keep working; no server restarts', async () => {
    const creds = (await own.authority.issue({ kind: 'client', name: 'sec-revoked' })).file
    const victim = await connectNats(own.cluster.urls, 'sec-victim', { creds, tlsCa: own.authority.paths.caFile })
    const cutOff = (async () => {
      for await (const s of victim.status()) if (s.type === 'disconnect') return
    })()
    const { jwts } = await own.authority.revoke('client', 'sec-revoked')
    const sys = await sysConnect('sec-sys')
    for (const jwt of jwts) await pushAccount(sys, jwt)
    await sys.close()
    // The server closes the revoked user's connection; a new connection with the same creds is refused.
    await cutOff
    await victim.close()
    await expect(connectNats(own.cluster.urls, 'sec-victim-again', { creds, tlsCa: own.authority.paths.caFile })).rejects.toMatchObject({ code: 'UPSWARM_E_AUTH' })
    expect((await new RepoClient(conn('client')).revisions(product)).revs.length).toBeGreaterThan(0)
  })
})
