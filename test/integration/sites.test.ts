// Issue 17 items 2 and 3: sites, tested as hosts. Three core hosts (one NATS node each, routed,
// JetStream domain `core`, one repository server and a proxy each) on a LAN; two sites, each a
// namespace joined to one core host by a WAN veth capped with `tc tbf`, running its own NATS — a
// leaf node in a JetStream domain of its own holding mirrors of the core's streams — and its own
// server, proxy and tracker (test/helpers/sites-deploy.ts). A publish in the core reaches both
// sites; the site's clients update from the site; the bytes that crossed each WAN link, read from
// the link's own interface counters, ÷ (sites × F) is reported; a site cut off from the core keeps
// updating its clients from its server and its peers, `upswarm mirrors` says it is behind, and the
// site catches up when the link returns. The
// leaf link runs under the site's own `leaf` identity, and the core sources each site's alerts and
// fleet reports (`upswarm site add`).
// `npm run test:sites` runs the full size (5 clients per site, F = 8 MiB); `npm test` a short one.
import { once } from 'node:events'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { newProduct, tempDir } from '../helpers/cluster.ts'
import { CLI, cliIn } from '../helpers/hosts-deploy.ts'
import { SITES, SitesDeployment } from '../helpers/sites-deploy.ts'
import { randomContent } from '../helpers/trees.ts'

const FULL = process.env.UPSWARM_SITES_FULL === '1'
const CLIENTS = FULL ? 5 : 2
const F = (FULL ? 8 : 2) * 1024 * 1024
const WAN_RATE = FULL ? '20mbit' : '40mbit'

describe('sites in network namespaces', { timeout: FULL ? 900_000 : 400_000 }, () => {
  let base: { path: string; cleanup: () => Promise<void> }
  let d: SitesDeployment | undefined

  beforeAll(async () => {
    base = await tempDir('upswarm-sites-')
    d = await SitesDeployment.start(base.path, { wanRate: WAN_RATE })
  }, FULL ? 600_000 : 300_000)

  afterAll(async () => {
    expect(d ? await d.teardown() : []).toEqual([])
    await base?.cleanup()
  })

  it('sites — a publish reaches both sites once each over the WAN, their clients update locally, and a site cut off keeps updating and catches up', async () => {
    const sites = d!
    const { net } = sites
    // Item 5: every host's `up` dialled its own advertised address and reached its node.
    expect([...sites.endpoints.values()].map((e) => e.warnings ?? [])).toEqual([...sites.endpoints.keys()].map(() => []))
    const product = newProduct()
    const adminCreds = await sites.creds('admin', 'site-operator')
    const publish = async (rev: number, files: Record<string, Buffer | string>): Promise<void> => {
      const r = await sites.publish(product, rev, files)
      expect(r.code, r.stderr).toBe(0)
    }
    const waitSynced = async (s: string, rev: number): Promise<void> => {
      try {
        await sites.waitSynced(s, product, rev, FULL ? 300_000 : 120_000)
      } catch (err) {
        // What the site said and what its mirrors hold, for the failure's report.
        const mirrors = await cliIn(net, s, await sites.siteEnv(s, adminCreds), 'mirrors')
        throw new Error(`${s} did not sync r${rev}: ${(err as Error).message}\n--- mirrors\n${mirrors.stdout}${mirrors.stderr}\n--- up\n${sites.logs.get(s)}`)
      }
    }
    const wc = (s: string, i: number): string => sites.wc(s, i)
    const update = async (s: string, i: number, ...args: string[]): Promise<{ bytesFromPeers: number }> => {
      const r = await sites.update(s, i, ...args)
      expect(r.code, r.stderr).toBe(0)
      return JSON.parse(r.stdout) as { bytesFromPeers: number }
    }

    // The core sources each site's alerts and fleet reports (`upswarm site add`, an operator at the core).
    const coreEnv = sites.coreEnv(adminCreds)
    const added = await sites.addSites(adminCreds)
    expect(added.code, added.stderr).toBe(0)

    // r1: small; every site's clients start from it.
    await publish(1, { 'app.txt': 'version 1\n' })
    await Promise.all(SITES.map((s) => waitSynced(s.name, 1)))
    await Promise.all(SITES.flatMap((s) => Array.from({ length: CLIENTS }, async (_, i) => {
      const r = await sites.init(s.name, i, product)
      expect(r.code, r.stderr).toBe(0)
    })))

    // r2: F bytes of new content. Cross-site bytes: what the WAN links carried, both ways, from the
    // publish until every client of both sites has it.
    const body = randomContent(F)
    const before = sites.wanBytes()
    await publish(2, { 'app.txt': 'version 2\n', 'lib/engine.bin': body })
    await Promise.all(SITES.map((s) => waitSynced(s.name, 2)))
    // Half the clients update with the link up; the rest with it down, below.
    const up = Math.ceil(CLIENTS / 2)
    await Promise.all(SITES.flatMap((s) => Array.from({ length: up }, (_, i) => update(s.name, i))))
    const cross = sites.wanBytes() - before
    const ratio = cross / (SITES.length * F)
    console.log(`sites: F = ${F} B, ${SITES.length} sites × ${CLIENTS} clients (${up} updated with the WAN up), WAN ${WAN_RATE}: cross-site bytes ${cross} = ${ratio.toFixed(3)} × (sites × F)`)
    expect(ratio).toBeLessThanOrEqual(1.5)
    for (const s of SITES) expect(await readFile(join(wc(s.name, 0), 'lib', 'engine.bin'))).toEqual(body)

    // The WAN of site-a goes down: its other clients still update, from the site's own server and
    // from a peer of the site: client 0 shares what it has (a sharing daemon, announced to the
    // site's own tracker; the leaf link carries no tracker traffic, so peers are the site's only).
    const cut = SITES[0]
    sites.setWan(cut.name, 'down')
    // A one-off `update` joins the swarm when given a tracker: the site's own (its HTTP door).
    const siteTracker = sites.endpoints.get(cut.name)!.trackerHttp!
    const sharer = net.spawn(cut.name, process.execPath, [CLI, 'daemon', wc(cut.name, 0), '--json', '--host', sites.siteAddr.get(cut.name)!], { env: await sites.siteEnv(cut.name), stdio: ['ignore', 'pipe', 'pipe'] })
    try {
      let out = ''
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`the sharing daemon at ${cut.name} said nothing of being ready in 60 s: ${out}`)), 60_000)
        sharer.stdout!.on('data', (d: Buffer) => {
          out += d.toString()
          if (/^READY /m.test(out)) {
            clearTimeout(timer)
            resolve()
          }
        })
        sharer.once('exit', (code) => reject(new Error(`the sharing daemon at ${cut.name} exited (${code}): ${out}`)))
      })
      const fromPeers = (await Promise.all(Array.from({ length: CLIENTS - up }, (_, i) => update(cut.name, up + i, '--tracker', siteTracker)))).reduce((sum, r) => sum + r.bytesFromPeers, 0)
      console.log(`sites: ${cut.name} cut off: ${CLIENTS - up} client(s) updated, ${fromPeers} B from the site's peers`)
      expect(fromPeers).toBeGreaterThan(0)
    } finally {
      // Stopped before client 0's working copy is updated again below.
      const exited = sharer.exitCode === null ? once(sharer, 'exit') : Promise.resolve()
      sharer.kill('SIGTERM')
      await exited
    }
    for (let i = 0; i < CLIENTS; i++) expect(await readFile(join(wc(cut.name, i), 'app.txt'), 'utf8')).toBe('version 2\n')
    // r3 in the core while the site is cut off: the site's mirrors say so (exit 1, BEHIND).
    await publish(3, { 'app.txt': 'version 3\n', 'lib/engine.bin': body })
    await expect.poll(async () => (await cliIn(net, cut.name, await sites.siteEnv(cut.name, adminCreds), 'mirrors', '--stale-after', '3')).code, { timeout: 60_000, interval: 1000 }).toBe(1)
    const status = await cliIn(net, cut.name, await sites.siteEnv(cut.name, adminCreds), 'mirrors', '--stale-after', '3', '--json')
    expect(JSON.parse(status.stdout).behind).toContain('UPSWARM_RELEASES')
    // The other site was not cut off: it has r3.
    await waitSynced(SITES[1].name, 3)

    // The link returns: the site catches up (its mirror from where it stopped), its clients update.
    sites.setWan(cut.name, 'up')
    await waitSynced(cut.name, 3)
    await update(cut.name, 0)
    expect(await readFile(join(wc(cut.name, 0), 'app.txt'), 'utf8')).toBe('version 3\n')
    await expect.poll(async () => (await cliIn(net, cut.name, await sites.siteEnv(cut.name, adminCreds), 'mirrors')).code, { timeout: 60_000, interval: 1000 }).toBe(0)
    // At the core, `mirrors` shows its sources of both sites, heard from and caught up.
    const sources = async (): Promise<string[]> => {
      const r = await cliIn(net, 'h1', coreEnv, 'mirrors', '--json')
      return (JSON.parse(r.stdout) as { mirrors: { origin: string; lag: number; activeMs: number }[] }).mirrors
        .filter((m) => m.origin.startsWith('site ') && m.lag === 0 && m.activeMs >= 0).map((m) => m.origin).sort()
    }
    await expect.poll(sources, { timeout: 60_000, interval: 1000 }).toEqual(SITES.flatMap((s) => [`site ${s.name}`, `site ${s.name}`]).sort())
  })
})
