// Issue 17 items 2 and 5: a site's leaf link under its own identity, on loopback (the netns suite
// runs the same over veth links). A core (its own JetStream domain, a leaf listener) and a site (a
// leaf node in a domain of its own) that connects with the `leaf` identity `up` issues for it:
// the site's mirrors catch up with the core's streams of record and republish what they store in
// the site; the core sources the site's alerts and fleet reports (`upswarm site add`); `mirrors`
// shows both directions; and everything else a compromised site might send through its link —
// deleting, purging or appending to the core's streams, taking a server's durable consumer — is
// refused, with the core's streams unchanged.
import { join } from 'node:path'
import { AckPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream'
import type { NatsConnection } from '@nats-io/transport-node'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Authority } from '../../infra/auth/authority.ts'
import { NatsCluster } from '../../infra/cluster/nats-cluster.ts'
import { freePort } from '../../infra/cluster/ports.ts'
import { connectNats } from '../../infra/nats/connect.ts'
import {
  ALERT_STREAM, ALERTED_SUBJECTS, alertSubject, BLOB_BUCKET, FLEET_STREAM, fleetSubject, META_STREAM, RELEASE_STREAM, releaseSubject, releasedSubject, serverConsumer,
} from '../../infra/nats/names.ts'
import { readAlerts, type StoredAlert } from '../../infra/nats/alert-reader.ts'
import { fleetReportOf, readFleet } from '../../infra/nats/fleet.ts'
import { fleetView } from '../../actors/operator/fleet.ts'
import { ensureResources } from '../../infra/nats/resources.ts'
import { addSiteSources, ensureSiteMirrors, mirrorStatus } from '../../infra/nats/site-mirrors.ts'
import { newProduct, tempDir } from '../helpers/cluster.ts'

const SITE = 'lab-site'

describe('a site on a leaf link with its own identity', { timeout: 120_000 }, () => {
  let dir: { path: string; cleanup: () => Promise<void> }
  let core: NatsCluster
  let site: NatsCluster
  let coreNc: NatsConnection
  let siteNc: NatsConnection
  const product = newProduct()

  beforeAll(async () => {
    dir = await tempDir('upswarm-site-leaf-')
    const authority = await Authority.open(join(dir.path, 'auth'))
    const leafPort = await freePort()
    core = await NatsCluster.start({ dir: join(dir.path, 'core'), nodes: 1, authority, domain: 'core', leafListen: { host: '127.0.0.1', port: leafPort } })
    site = await NatsCluster.start({
      dir: join(dir.path, 'site'), nodes: 1, authority, domain: SITE,
      leafRemotes: [{
        urls: [`tls://127.0.0.1:${leafPort}`], account: authority.accountPublicKeys.upswarm, caFile: authority.paths.caFile,
        credentials: (await authority.issue({ kind: 'leaf', name: SITE }, { coreDomain: 'core' })).file,
      }],
    })
    const auth = { creds: (await authority.issue({ kind: 'admin', name: 'admin' })).file, tlsCa: authority.paths.caFile }
    coreNc = await connectNats(core.urls, 'site-leaf-core', auth)
    await ensureResources(coreNc)
    siteNc = await connectNats(site.urls, 'site-leaf-site', auth)
    await ensureSiteMirrors(siteNc, 'core')
  }, 120_000)

  afterAll(async () => {
    await siteNc?.close()
    await coreNc?.close()
    await site?.stop()
    await core?.stop()
    await dir?.cleanup()
  })

  it('site-leaf — the mirrors catch up over the leaf identity and republish in the site; the core sources the site\'s alerts and fleet reports', async () => {
    // Heard in the site: the site's own mirror republishes what it stores.
    const heard: number[] = []
    siteNc.subscribe(releasedSubject(product), { callback: (_e, m) => { heard.push(Number(m.headers?.get('Nats-Sequence'))) } })
    await siteNc.flush()
    const js = jetstream(coreNc)
    const seqs: number[] = []
    for (let i = 0; i < 3; i++) seqs.push((await js.publish(releaseSubject(product), `release ${i}`)).seq)
    await expect.poll(() => heard.length, { timeout: 30_000 }).toBe(3)
    expect(heard).toEqual(seqs)
    const rel = async (): Promise<number> => (await mirrorStatus(siteNc)).find((m) => m.stream === RELEASE_STREAM)?.lastSeq ?? 0
    await expect.poll(rel, { timeout: 30_000 }).toBe(seqs.at(-1))
    const siteView = await mirrorStatus(siteNc)
    expect(siteView.filter((m) => m.origin === 'the core').map((m) => m.stream)).toEqual(expect.arrayContaining([RELEASE_STREAM, META_STREAM, `OBJ_${BLOB_BUCKET}`]))
    expect(siteView.find((m) => m.stream === RELEASE_STREAM)).toMatchObject({ lag: 0 })

    // The site's clients write alerts and fleet reports into the site's own streams; the core sources them.
    expect(await addSiteSources(coreNc, [SITE])).toEqual([`${ALERT_STREAM} ← ${SITE}`, `${FLEET_STREAM} ← ${SITE}`])
    expect(await addSiteSources(coreNc, [SITE])).toEqual([])
    // The notary follows what the alert stream stored (its republish): the site's alert reaches it too.
    const heardAlerts: string[] = []
    coreNc.subscribe(ALERTED_SUBJECTS, { callback: (_e, m) => { heardAlerts.push(m.subject) } })
    await coreNc.flush()
    const cjs = jetstream(coreNc)
    const report = (rev: number): string => JSON.stringify(fleetReportOf({
      product, client: 'site-client', rev, stage: 0, health: { state: 'ok' }, upswarm: 'test', role: 'update', seq: 1, sentAt: new Date().toISOString(),
    }))
    // A core client's fleet report under the same name as the site's client: neither replaces the other.
    await cjs.publish(fleetSubject(product, 'site-client'), report(7))
    const sjs = jetstream(siteNc)
    await sjs.publish(alertSubject(product, 'site-client'), JSON.stringify({ what: 'a site client\'s alert' }))
    await sjs.publish(fleetSubject(product, 'site-client'), report(1))
    const jsm = await jetstreamManager(coreNc)
    // Stored at the core with the site as a fifth token (siteSubjectTransform).
    const alerts = `${alertSubject(product, 'site-client')}.${SITE}`
    await expect.poll(async () => (await jsm.streams.info(ALERT_STREAM, { subjects_filter: alerts })).state.subjects?.[alerts] ?? 0, { timeout: 30_000 }).toBe(1)
    await expect.poll(() => heardAlerts, { timeout: 10_000 }).toContain(`upswarm.alerted.${product}.site-client.${SITE}`)
    const read: StoredAlert[] = []
    await readAlerts(coreNc, { product, sinceMs: 0 }, (a) => read.push(a))
    expect(read.map((a) => [a.from, a.site])).toEqual([['site-client', SITE]])
    await expect.poll(async () => (await readFleet(coreNc, product)).map((r) => [r.from, r.site ?? 'core', r.rev]), { timeout: 30_000 })
      .toEqual([['site-client', 'core', 7], ['site-client', SITE, 1]])
    // The fleet view names the site's client with its site.
    const view = (await fleetView(coreNc, product)).products[0]!
    expect(view.releases.flatMap((r) => r.clients).sort()).toEqual(['site-client', `site-client@${SITE}`])
    const coreView = await mirrorStatus(coreNc)
    expect(coreView.filter((m) => m.origin === `site ${SITE}`).map((m) => m.stream).sort()).toEqual([ALERT_STREAM, FLEET_STREAM])
  })

  it('site-leaf — what a compromised site sends through its link is refused: the core\'s streams, their configurations and their consumers are unchanged', async () => {
    const jsm = await jetstreamManager(coreNc)
    const streams = [RELEASE_STREAM, META_STREAM, `OBJ_${BLOB_BUCKET}`, ALERT_STREAM, FLEET_STREAM]
    /** Each stream's messages, configuration and durable consumers: what an attack would change. */
    const state = async (): Promise<unknown[]> => Promise.all(streams.map(async (name) => {
      const si = await jsm.streams.info(name)
      const durables: string[] = []
      for await (const c of jsm.consumers.list(name)) if (c.config.durable_name) durables.push(`${c.name} → ${c.config.deliver_subject ?? 'pull'}`)
      return { name, messages: si.state.messages, config: si.config, durables: durables.sort() }
    }))
    await addSiteSources(coreNc, [SITE])
    // A server's durable consumer of the release stream, as a core server holds one.
    await jsm.consumers.add(RELEASE_STREAM, { durable_name: serverConsumer('s1'), ack_policy: AckPolicy.Explicit })
    const before = await state()
    const api = '$JS.core.API'
    const configs = new Map(await Promise.all(streams.map(async (n) => [n, (await jsm.streams.info(n)).config] as const)))
    const attempts: [string, string][] = [
      ...streams.flatMap((s) => [
        [`${api}.STREAM.DELETE.${s}`, ''],
        [`${api}.STREAM.PURGE.${s}`, '{}'],
        // A valid update: the stream's own configuration with one limit changed.
        [`${api}.STREAM.UPDATE.${s}`, JSON.stringify({ ...configs.get(s), max_msgs: 1 })],
      ] as [string, string][]),
      // Taking over a server's durable consumer (the subject names it; a body naming it too).
      [`${api}.CONSUMER.CREATE.${RELEASE_STREAM}.${serverConsumer('s1')}`, JSON.stringify({ stream_name: RELEASE_STREAM, config: { durable_name: serverConsumer('s1'), ack_policy: 'none', deliver_subject: 'x.y' } })],
      [`${api}.CONSUMER.DELETE.${RELEASE_STREAM}.${serverConsumer('s1')}`, ''],
      // The one subject the link may use, with a body naming the server's durable.
      [`${api}.CONSUMER.CREATE.${RELEASE_STREAM}`, JSON.stringify({ stream_name: RELEASE_STREAM, config: { durable_name: serverConsumer('s1'), ack_policy: 'none', deliver_subject: 'x.y' } })],
    ]
    // Fire and forget: no answer can come back over the link, so only the core's state tells.
    for (const [subject, body] of attempts) siteNc.publish(subject, body)
    await siteNc.flush()
    // A release appended in the site lands nowhere (the site's release stream is a mirror) and never reaches the core.
    await expect(jetstream(siteNc).publish(releaseSubject(product), 'forged', { timeout: 2000 })).rejects.toThrow()
    // What the site sent before is through the link (in order, one connection) once a later
    // message of the site reached the core: an alert the core sources from the site's stream.
    const marker = alertSubject(product, 'after-the-attempts')
    await jetstream(siteNc).publish(marker, '{}')
    const stored = `${marker}.${SITE}`
    await expect.poll(async () => (await jsm.streams.info(ALERT_STREAM, { subjects_filter: stored })).state.subjects?.[stored] ?? 0, { timeout: 30_000 }).toBe(1)
    const after = await state()
    // The alert stream has the marker; nothing else changed.
    ;(before[streams.indexOf(ALERT_STREAM)] as { messages: number }).messages += 1
    expect(after).toEqual(before)
  })
})
