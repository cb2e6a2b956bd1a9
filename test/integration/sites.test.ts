// Issue 17 items 2 and 3: sites, tested as hosts. Three core hosts (one NATS node each, routed,
// JetStream domain `core`, one repository server and a proxy each) on a LAN; two sites, each a
// namespace joined to one core host by a WAN veth capped with `tc tbf`, running its own NATS — a
// leaf node in a JetStream domain of its own holding mirrors of the core's streams — and its own
// server and proxy. A publish in the core reaches both sites; the site's clients update from the
// site; the bytes that crossed each WAN link, read from the link's own interface counters, ÷
// (sites × F) is reported; a site cut off from the core keeps updating its clients from what it
// holds, `upswarm mirrors` says it is behind, and the site catches up when the link returns. The
// leaf link runs under the site's own `leaf` identity, and the core sources each site's alerts and
// fleet reports (`upswarm site add`).
// `npm run test:sites` runs the full size (5 clients per site, F = 8 MiB); `npm test` a short one.
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Authority } from '../../infra/auth/authority.ts'
import { generatePublisherKey, writeKeyFile } from '../../infra/release/keys.ts'
import { newProduct, tempDir } from '../helpers/cluster.ts'
import { cliIn, hostEnv, NATS_PORT, upIn } from '../helpers/hosts-deploy.ts'
import { inNs, TestNet } from '../helpers/netns.ts'
import { randomContent, writeTree } from '../helpers/trees.ts'

const FULL = process.env.UPSWARM_SITES_FULL === '1'
const CLIENTS = FULL ? 5 : 2
const F = (FULL ? 8 : 2) * 1024 * 1024
const WAN_RATE = FULL ? '20mbit' : '40mbit'
const CORE = ['h1', 'h2', 'h3'] as const
/** Each site, the core host its WAN link reaches, and the link's subnet. */
const SITES = [{ name: 'site-a', core: 'h1', subnet: '10.231.11' }, { name: 'site-b', core: 'h2', subnet: '10.231.12' }] as const
const LEAF_PORT = 7422
const WAN = 'wan'

describe('sites in network namespaces', { timeout: FULL ? 900_000 : 400_000 }, () => {
  let net: TestNet
  let base: { path: string; cleanup: () => Promise<void> }
  let authority: Authority
  const logs = new Map<string, string>()
  /** Each site's address on its WAN link (its NATS, servers and proxy bind it). */
  const siteAddr = new Map<string, string>()

  beforeAll(async () => {
    net = new TestNet()
    net.lan('lan', '10.231.1', [...CORE])
    const wanCore = new Map<string, string>()
    for (const s of SITES) {
      const ends = net.link(s.core, s.name, WAN, s.subnet)
      wanCore.set(s.name, ends.a)
      siteAddr.set(s.name, ends.b)
      // The WAN's capacity, both directions (tbf works here; netem delay does not).
      for (const h of [s.core, s.name]) inNs(net.host(h).ns, 'tc', 'qdisc', 'add', 'dev', WAN, 'root', 'tbf', 'rate', WAN_RATE, 'burst', '64kb', 'latency', '400ms')
    }
    base = await tempDir('upswarm-sites-')
    authority = await Authority.open(join(base.path, 'auth'))
    const ca = authority.paths.caFile
    const trust = join(base.path, 'trust.json')
    const addrs = CORE.map((h) => net.host(h).addr)
    await Promise.all(CORE.map((h, i) => {
      const site = SITES.find((s) => s.core === h)
      return upIn(net, h, ['--dir', join(base.path, h), '--auth', join(base.path, 'auth'), '--name', h, '--listen', addrs[i]!,
        '--nats-nodes', '1', '--servers', '1', '--roles', 'nats,servers,proxy', '--nats-port', String(NATS_PORT), '--cluster-port', '6222',
        '--routes', addrs.filter((_, j) => j !== i).map((a) => `nats-route://${a}:6222`).join(','), '--cluster-size', '3',
        '--js-domain', 'core', '--trust-file', trust, ...(site ? ['--leaf-listen', `${wanCore.get(site.name)}:${LEAF_PORT}`] : [])],
      hostEnv(addrs[i]!, '', ca), logs)
    }))
    await Promise.all(SITES.map((s) => upIn(net, s.name, ['--dir', join(base.path, s.name), '--auth', join(base.path, 'auth'), '--name', s.name,
      '--listen', siteAddr.get(s.name)!, '--nats-nodes', '1', '--servers', '1', '--roles', 'nats,servers,proxy,tracker', '--nats-port', String(NATS_PORT),
      '--js-domain', s.name, '--leaf-remote', `tls://${wanCore.get(s.name)}:${LEAF_PORT}`, '--core-domain', 'core', '--trust-file', trust],
    hostEnv(siteAddr.get(s.name)!, '', ca), logs)))
  }, FULL ? 600_000 : 300_000)

  afterAll(async () => {
    await net?.teardown()
    expect(net ? net.leftovers() : []).toEqual([])
    await base?.cleanup()
  })

  it('sites — a publish reaches both sites once each over the WAN, their clients update locally, and a site cut off keeps updating and catches up', async () => {
    const ca = authority.paths.caFile
    const product = newProduct()
    const key = generatePublisherKey()
    const keyFile = join(base.path, 'publisher.key')
    await writeKeyFile(keyFile, key)
    const trust = join(base.path, 'trust.json')
    const pubEnv = hostEnv(net.host('h1').addr, (await authority.issue({ kind: 'publisher', name: 'publisher' })).file, ca)
    const adminCreds = (await authority.issue({ kind: 'admin', name: 'site-operator' })).file
    const clientCreds = (await authority.issue({ kind: 'client', name: 'site-client' })).file
    const siteEnv = (s: string, creds = clientCreds): NodeJS.ProcessEnv => hostEnv(siteAddr.get(s)!, creds, ca)
    const publish = async (rev: number, files: Record<string, Buffer | string>): Promise<void> => {
      await writeTree(join(base.path, `src${rev}`), files)
      const r = await cliIn(net, 'h1', pubEnv, 'publish', join(base.path, `src${rev}`), '--product', product, '--key', keyFile, '--trust', trust)
      expect(r.code, r.stderr).toBe(0)
    }
    /** The site's server has `rev`, as the site's own proxy sees it (its heartbeats do not cross the WAN). */
    const siteSynced = async (s: string): Promise<Record<string, number>> => {
      const r = await cliIn(net, s, siteEnv(s), 'stats', '--json')
      if (r.code !== 0) return {}
      return Object.fromEntries((JSON.parse(r.stdout) as { servers: { id: string; synced: Record<string, number> }[] }).servers.map((x) => [x.id, x.synced[product] ?? 0]))
    }
    const waitSynced = async (s: string, rev: number): Promise<void> => {
      try {
        await expect.poll(() => siteSynced(s), { timeout: FULL ? 300_000 : 120_000, interval: 500 }).toEqual({ [`${s}-s1`]: rev })
      } catch (err) {
        // What the site said and what its mirrors hold, for the failure's report.
        const mirrors = await cliIn(net, s, siteEnv(s, adminCreds), 'mirrors')
        throw new Error(`${s} did not sync r${rev}: ${(err as Error).message}\n--- mirrors\n${mirrors.stdout}${mirrors.stderr}\n--- up\n${logs.get(s)}`)
      }
    }
    const wanBytes = (): number => SITES.reduce((sum, s) => sum + net.bytes(s.core, WAN) + net.bytes(s.name, WAN), 0)
    const wc = (s: string, i: number): string => join(base.path, `${s}-wc${i}`)
    const update = async (s: string, i: number): Promise<void> => {
      const r = await cliIn(net, s, siteEnv(s), 'update', wc(s, i))
      expect(r.code, r.stderr).toBe(0)
    }

    // The core sources each site's alerts and fleet reports (`upswarm site add`, an operator at the core).
    const coreEnv = hostEnv(net.host('h1').addr, adminCreds, ca)
    const added = await cliIn(net, 'h1', coreEnv, 'site', 'add', ...SITES.map((s) => s.name))
    expect(added.code, added.stderr).toBe(0)

    // r1: small; every site's clients start from it.
    await publish(1, { 'app.txt': 'version 1\n' })
    await Promise.all(SITES.map((s) => waitSynced(s.name, 1)))
    await Promise.all(SITES.flatMap((s) => Array.from({ length: CLIENTS }, async (_, i) => {
      const r = await cliIn(net, s.name, siteEnv(s.name), 'init', wc(s.name, i), '--product', product, '--pubkey', key.publicKey)
      expect(r.code, r.stderr).toBe(0)
    })))

    // r2: F bytes of new content. Cross-site bytes: what the WAN links carried, both ways, from the
    // publish until every client of both sites has it.
    const body = randomContent(F)
    const before = wanBytes()
    await publish(2, { 'app.txt': 'version 2\n', 'lib/engine.bin': body })
    await Promise.all(SITES.map((s) => waitSynced(s.name, 2)))
    // Half the clients update with the link up; the rest with it down, below.
    const up = Math.ceil(CLIENTS / 2)
    await Promise.all(SITES.flatMap((s) => Array.from({ length: up }, (_, i) => update(s.name, i))))
    const cross = wanBytes() - before
    const ratio = cross / (SITES.length * F)
    console.log(`sites: F = ${F} B, ${SITES.length} sites × ${CLIENTS} clients (${up} updated with the WAN up), WAN ${WAN_RATE}: cross-site bytes ${cross} = ${ratio.toFixed(3)} × (sites × F)`)
    expect(ratio).toBeLessThanOrEqual(1.5)
    for (const s of SITES) expect(await readFile(join(wc(s.name, 0), 'lib', 'engine.bin'))).toEqual(body)

    // The WAN of site-a goes down: its other clients still update, from the site's own server.
    const cut = SITES[0]
    inNs(net.host(cut.name).ns, 'ip', 'link', 'set', WAN, 'down')
    await Promise.all(Array.from({ length: CLIENTS - up }, (_, i) => update(cut.name, up + i)))
    for (let i = 0; i < CLIENTS; i++) expect(await readFile(join(wc(cut.name, i), 'app.txt'), 'utf8')).toBe('version 2\n')
    // r3 in the core while the site is cut off: the site's mirrors say so (exit 1, BEHIND).
    await publish(3, { 'app.txt': 'version 3\n', 'lib/engine.bin': body })
    await expect.poll(async () => (await cliIn(net, cut.name, siteEnv(cut.name, adminCreds), 'mirrors', '--stale-after', '3')).code, { timeout: 60_000, interval: 1000 }).toBe(1)
    const status = await cliIn(net, cut.name, siteEnv(cut.name, adminCreds), 'mirrors', '--stale-after', '3', '--json')
    expect(JSON.parse(status.stdout).behind).toContain('UPSWARM_RELEASES')
    // The other site was not cut off: it has r3.
    await waitSynced(SITES[1].name, 3)

    // The link returns: the site catches up (its mirror from where it stopped), its clients update.
    inNs(net.host(cut.name).ns, 'ip', 'link', 'set', WAN, 'up')
    await waitSynced(cut.name, 3)
    await update(cut.name, 0)
    expect(await readFile(join(wc(cut.name, 0), 'app.txt'), 'utf8')).toBe('version 3\n')
    await expect.poll(async () => (await cliIn(net, cut.name, siteEnv(cut.name, adminCreds), 'mirrors')).code, { timeout: 60_000, interval: 1000 }).toBe(0)
    // At the core, `mirrors` shows its sources of both sites, heard from and caught up.
    const sources = async (): Promise<string[]> => {
      const r = await cliIn(net, 'h1', coreEnv, 'mirrors', '--json')
      return (JSON.parse(r.stdout) as { mirrors: { origin: string; lag: number; activeMs: number }[] }).mirrors
        .filter((m) => m.origin.startsWith('site ') && m.lag === 0 && m.activeMs >= 0).map((m) => m.origin).sort()
    }
    await expect.poll(sources, { timeout: 60_000, interval: 1000 }).toEqual(SITES.flatMap((s) => [`site ${s.name}`, `site ${s.name}`]).sort())
  })
})
