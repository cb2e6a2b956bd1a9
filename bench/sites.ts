// Sites benchmark (issue 17 item 3): the netns topology of test/helpers/sites-deploy.ts — three
// core hosts, two sites behind `tc tbf`-capped WAN links, each site its own NATS leaf node with
// mirrors, server, proxy and tracker — driven as an operator and a fleet would: a release of F
// bytes published in the core, both sites syncing it over their WAN link, every client of each
// site updating from the site (its server and its peers). Reports per site how long the sync and
// the updates took, where the clients' bytes came from, the bytes each WAN link carried ÷ F, and
// how long a site cut off (its link set down while a release is published) takes to catch up
// once the link returns. Needs root and iproute2 (network namespaces), like the sites test.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { cliIn } from '../test/helpers/hosts-deploy.ts'
import { SITES, SitesDeployment, WAN } from '../test/helpers/sites-deploy.ts'
import { randomContent } from '../test/helpers/trees.ts'
import { MiB, progress, round, startRecording, type BenchResult, type Cell, type CommonOptions } from './lib/report.ts'

export interface SitesBenchOptions extends CommonOptions {
  /** Clients per site. */
  clients: number
  /** F: the new content of the measured release, MiB. */
  mib: number
  /** tc rate of each WAN link (both directions). */
  wanRate: string
}

export const SITES_DEFAULTS: SitesBenchOptions = { clients: 5, mib: 16, wanRate: '40mbit' }

interface UpdateJson { bytesFromServers: number; bytesFromPeers: number; to: number }

export async function runSitesBench(o: SitesBenchOptions): Promise<BenchResult> {
  const rec = startRecording(o.resultsDir)
  const log = progress('sites', rec.startedAt)
  const dir = await mkdtemp(join(tmpdir(), 'upswarm-bench-sites-'))
  let d: SitesDeployment | undefined
  try {
    let t = performance.now()
    d = await SitesDeployment.start(dir, { wanRate: o.wanRate })
    const sites = d
    const setupS = (performance.now() - t) / 1000
    log(`3 core hosts and ${SITES.length} sites up in ${setupS.toFixed(1)} s`)
    const product = crypto.randomUUID()
    const admin = await sites.creds('admin', 'bench-operator')
    const must = (r: { code: number; stderr: string }, what: string): void => {
      if (r.code !== 0) throw new Error(`${what}: exit ${r.code}: ${r.stderr}`)
    }
    must(await sites.addSites(admin), 'site add')
    /** Seconds from `since` until the site's server holds `rev`. */
    const synced = async (site: string, rev: number, since: number): Promise<number> => {
      await sites.waitSynced(site, product, rev, 600_000)
      return (performance.now() - since) / 1000
    }
    const update = async (site: string, i: number): Promise<UpdateJson & { seconds: number }> => {
      const t0 = performance.now()
      // With the site's tracker, a one-off update joins the site's swarm: its server and its peers.
      const r = await sites.update(site, i, '--tracker', sites.endpoints.get(site)!.trackerHttp!)
      must(r, `update ${site} client ${i}`)
      return { ...(JSON.parse(r.stdout) as UpdateJson), seconds: (performance.now() - t0) / 1000 }
    }

    must(await sites.publish(product, 1, { 'app.txt': 'version 1\n' }), 'publish r1')
    t = performance.now()
    await Promise.all(SITES.map((s) => synced(s.name, 1, t)))
    await Promise.all(SITES.flatMap((s) => Array.from({ length: o.clients }, async (_, i) => {
      must(await sites.init(s.name, i, product), `init ${s.name} ${i}`)
    })))
    log(`r1 at both sites, ${o.clients} clients each`)

    // The measured release: F bytes of new content.
    const F = o.mib * MiB
    const wanBefore = SITES.map((s) => sites.net.bytes(s.core, WAN) + sites.net.bytes(s.name, WAN))
    t = performance.now()
    must(await sites.publish(product, 2, { 'app.txt': 'version 2\n', 'lib/engine.bin': randomContent(F) }), 'publish r2')
    const publishS = (performance.now() - t) / 1000
    const rows: Record<string, Cell>[] = []
    const perSite = await Promise.all(SITES.map(async (s, k) => {
      const syncS = await synced(s.name, 2, t)
      const t0 = performance.now()
      const ups = await Promise.all(Array.from({ length: o.clients }, (_, i) => update(s.name, i)))
      const updateS = (performance.now() - t0) / 1000
      return { s, k, syncS, updateS, ups }
    }))
    for (const { s, k, syncS, updateS, ups } of perSite) {
      const wan = sites.net.bytes(s.core, WAN) + sites.net.bytes(s.name, WAN) - wanBefore[k]!
      const servers = ups.reduce((a, u) => a + u.bytesFromServers, 0)
      const peers = ups.reduce((a, u) => a + u.bytesFromPeers, 0)
      rows.push({
        site: s.name, clients: o.clients, 'publish → site synced s': round(syncS, 3), 'clients updated s': round(updateS, 3),
        'slowest client s': round(Math.max(...ups.map((u) => u.seconds)), 3), 'from site server MiB': round(servers / MiB, 3),
        'from site peers MiB': round(peers / MiB, 3), 'WAN MiB': round(wan / MiB, 3), 'WAN ÷ F': round(wan / F, 3),
      })
    }
    const cross = rows.reduce((a, r) => a + (r['WAN MiB'] as number) * MiB, 0)
    const ratio = cross / (SITES.length * F)
    log(`r2 (${o.mib} MiB): cross-site ${ratio.toFixed(3)} × (sites × F)`)

    // A site cut off while a release is published, then its link restored: how long to catch up.
    const cut = SITES[0].name
    sites.setWan(cut, 'down')
    t = performance.now()
    must(await sites.publish(product, 3, { 'app.txt': 'version 3\n', 'lib/engine.bin': randomContent(F) }), 'publish r3')
    const otherS = await synced(SITES[1].name, 3, t)
    const cutUpdate = await update(cut, 0)
    // `mirrors` says so once the mirror has been silent for 3 s (asked every second, at most 60 times).
    let behind = { code: 0, stdout: '', stderr: '' }
    for (let i = 0; i < 60 && behind.code !== 1; i++) {
      behind = await cliIn(sites.net, cut, await sites.siteEnv(cut, admin), 'mirrors', '--stale-after', '3', '--json')
      if (behind.code !== 1) await new Promise((r) => setTimeout(r, 1000))
    }
    sites.setWan(cut, 'up')
    t = performance.now()
    const catchUpS = await synced(cut, 3, t)
    const after = await update(cut, 0)
    log(`cut-off site caught up in ${catchUpS.toFixed(1)} s after its link returned`)

    const leftovers = await d.teardown()
    d = undefined
    return rec.finish({
      name: 'sites',
      title: `Sites: ${SITES.length} sites × ${o.clients} clients behind ${o.wanRate} WAN links, a ${o.mib} MiB release`,
      parameters: { ...o, sites: SITES.length, coreHosts: 3 },
      columns: ['site', 'clients', 'publish → site synced s', 'clients updated s', 'slowest client s', 'from site server MiB', 'from site peers MiB', 'WAN MiB', 'WAN ÷ F'],
      rows,
      goals: [
        { goal: 'cross-site bytes ÷ (sites × F) ≤ 1.5 (issue 17 item 3)', met: ratio <= 1.5, detail: `${ratio.toFixed(3)} (${(cross / MiB).toFixed(1)} MiB over ${SITES.length} WAN links for F = ${o.mib} MiB)` },
        { goal: 'every client of both sites reaches the release from its site', met: perSite.every((p) => p.ups.every((u) => u.to === 2)), detail: `${SITES.length * o.clients} clients at r2` },
        {
          goal: 'a site cut off keeps serving what it has, says it is behind, and catches up when its link returns',
          met: cutUpdate.to === 2 && behind.code === 1 && after.to === 3,
          detail: `cut off: a client's update stayed at r${cutUpdate.to}, \`mirrors\` exit ${behind.code}; the other site synced r3 in ${otherS.toFixed(1)} s; after the link returned: synced in ${catchUpS.toFixed(1)} s, the client at r${after.to}`,
        },
        { goal: 'every namespace removed afterwards', met: leftovers.length === 0, detail: leftovers.length ? leftovers.join(', ') : 'none left' },
      ],
      notes: [
        `setup (3 core hosts routed in mutual TLS, 2 sites with leaf nodes and mirrors): ${setupS.toFixed(1)} s; publish of r2 from h1: ${publishS.toFixed(1)} s`,
        'publish → site synced: from the start of `upswarm publish` at h1 until the site\'s server holds the release, as the site\'s own proxy reports (polled every 200 ms); the mirrors carry it over the WAN link once',
        'WAN MiB: both ends\' transmit counters of the site\'s link (/sys/class/net/wan/statistics), from the publish of r2 until every client of the site had it',
        'each site: its own NATS (a leaf node under a `leaf` identity, JetStream domain of its own), server, proxy and tracker; clients use `upswarm update` (a short-lived sharing daemon: the site\'s server and the site\'s peers)',
      ],
    })
  } finally {
    await d?.teardown()
    if (!o.keep) await rm(dir, { recursive: true, force: true })
  }
}
