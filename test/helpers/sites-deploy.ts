// Issue 17 item 3: the sites topology, as hosts — three core hosts on a LAN (one NATS node each,
// routed, JetStream domain `core`, a repository server and a proxy each) and two sites, each a
// namespace joined to one core host by a WAN veth capped with `tc tbf`, running its own NATS (a
// leaf node in a domain of its own, holding mirrors of the core's streams), server, proxy and
// tracker. Shared by test/integration/sites.test.ts and `npm run bench -- sites`; every address
// exists only inside the namespaces, and `teardown` removes them all.
import { join } from 'node:path'
import { Authority } from '../../infra/auth/authority.ts'
import { generatePublisherKey, writeKeyFile, type PublisherKey } from '../../infra/release/keys.ts'
import type { Endpoints } from '../../actors/launcher/index.ts'
import { cliIn, hostEnv, NATS_PORT, upIn } from './hosts-deploy.ts'
import { inNs, TestNet } from './netns.ts'
import { writeTree } from './trees.ts'

export const CORE_HOSTS = ['h1', 'h2', 'h3'] as const
/** Each site, the core host its WAN link reaches, and the link's subnet. */
export const SITES = [{ name: 'site-a', core: 'h1', subnet: '10.231.11' }, { name: 'site-b', core: 'h2', subnet: '10.231.12' }] as const
export type SiteName = (typeof SITES)[number]['name']
const LEAF_PORT = 7422
/** The WAN interface's name at both ends of each site's link. */
export const WAN = 'wan'

export interface SitesOptions {
  /** tc rate of each WAN link, both directions (e.g. 20mbit). */
  wanRate: string
  /** Upload cap of site-a's repository server, bytes/s (unset: none). */
  siteServerRate?: number
}

export class SitesDeployment {
  readonly logs = new Map<string, string>()
  /** What each host's `up` reported (its endpoints.json): a site's tracker URLs among them. */
  readonly endpoints = new Map<string, Endpoints>()
  /** Each site's address on its WAN link (its NATS, servers and proxy bind it). */
  readonly siteAddr = new Map<string, string>()
  readonly key: PublisherKey = generatePublisherKey()
  private constructor(readonly net: TestNet, readonly dir: string, readonly authority: Authority) {}

  get ca(): string { return this.authority.paths.caFile }
  get trust(): string { return join(this.dir, 'trust.json') }
  get keyFile(): string { return join(this.dir, 'publisher.key') }

  /** Builds the namespaces and links, and starts every host's `up`; on failure everything made is removed. */
  static async start(dir: string, opts: SitesOptions): Promise<SitesDeployment> {
    const net = new TestNet()
    try {
      net.lan('lan', '10.231.1', [...CORE_HOSTS])
      const d = new SitesDeployment(net, dir, await Authority.open(join(dir, 'auth')))
      await d.up(opts)
      await writeKeyFile(d.keyFile, d.key)
      return d
    } catch (err) {
      await net.teardown()
      throw err
    }
  }

  private async up(opts: SitesOptions): Promise<void> {
    const { net, dir, ca, trust, logs } = this
    const wanCore = new Map<string, string>()
    for (const s of SITES) {
      const ends = net.link(s.core, s.name, WAN, s.subnet)
      wanCore.set(s.name, ends.a)
      this.siteAddr.set(s.name, ends.b)
      // The WAN's capacity, both directions (tbf works here; netem delay does not).
      for (const h of [s.core, s.name]) inNs(net.host(h).ns, 'tc', 'qdisc', 'add', 'dev', WAN, 'root', 'tbf', 'rate', opts.wanRate, 'burst', '64kb', 'latency', '400ms')
    }
    const addrs = CORE_HOSTS.map((h) => net.host(h).addr)
    await Promise.all(CORE_HOSTS.map(async (h, i) => {
      const site = SITES.find((s) => s.core === h)
      this.endpoints.set(h, await upIn(net, h, ['--dir', join(dir, h), '--auth', join(dir, 'auth'), '--name', h, '--listen', addrs[i]!,
        '--nats-nodes', '1', '--servers', '1', '--roles', 'nats,servers,proxy', '--nats-port', String(NATS_PORT), '--cluster-port', '6222',
        '--routes', addrs.filter((_, j) => j !== i).map((a) => `nats-route://${a}:6222`).join(','), '--cluster-size', '3',
        '--js-domain', 'core', '--trust-file', trust, ...(site ? ['--leaf-listen', `${wanCore.get(site.name)}:${LEAF_PORT}`] : [])],
      hostEnv(addrs[i]!, '', ca), logs))
    }))
    await Promise.all(SITES.map(async (s) => this.endpoints.set(s.name, await upIn(net, s.name, ['--dir', join(dir, s.name), '--auth', join(dir, 'auth'), '--name', s.name,
      '--listen', this.siteAddr.get(s.name)!, '--nats-nodes', '1', '--servers', '1', '--roles', 'nats,servers,proxy,tracker', '--nats-port', String(NATS_PORT),
      '--js-domain', s.name, '--leaf-remote', `tls://${wanCore.get(s.name)}:${LEAF_PORT}`, '--core-domain', 'core', '--trust-file', trust],
    { ...hostEnv(this.siteAddr.get(s.name)!, '', ca), ...(s.name === SITES[0].name && opts.siteServerRate ? { UPSWARM_SERVER_MAX_UPLOAD_RATE: String(opts.siteServerRate) } : {}) }, logs))))
  }

  /** The environment of a CLI at a site, as a client machine (or with other creds). */
  async siteEnv(site: string, creds?: string): Promise<NodeJS.ProcessEnv> {
    return hostEnv(this.siteAddr.get(site)!, creds ?? await this.creds('client', 'site-client'), this.ca)
  }

  /** `upswarm ARGS` in a site, as its client machine. */
  async atSite(site: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    return cliIn(this.net, site, await this.siteEnv(site), ...args)
  }

  /** `upswarm init` of a site's client `i` at the newest release of `product`. */
  init(site: string, i: number, product: string): Promise<{ code: number; stdout: string; stderr: string }> {
    return this.atSite(site, 'init', this.wc(site, i), '--product', product, '--pubkey', this.key.publicKey)
  }

  /** `upswarm update --json` of a site's client `i`. */
  update(site: string, i: number, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    return this.atSite(site, 'update', this.wc(site, i), '--json', ...args)
  }

  /** `upswarm site add` of every site, at core host h1 with `creds`. */
  addSites(creds: string): Promise<{ code: number; stdout: string; stderr: string }> {
    return cliIn(this.net, 'h1', this.coreEnv(creds), 'site', 'add', ...SITES.map((s) => s.name))
  }

  /** The environment of a CLI on core host h1 with `creds`. */
  coreEnv(creds: string): NodeJS.ProcessEnv {
    return hostEnv(this.net.host('h1').addr, creds, this.ca)
  }

  private readonly issued = new Map<string, Promise<string>>()
  /** A creds file of the deployment, issued once however many callers ask at the same time. */
  creds(kind: 'admin' | 'client' | 'publisher', name: string): Promise<string> {
    const k = `${kind}/${name}`
    if (!this.issued.has(k)) this.issued.set(k, this.authority.issue({ kind, name }).then((i) => i.file))
    return this.issued.get(k)!
  }

  /** Publishes `files` as revision `rev` of `product` from core host h1. */
  async publish(product: string, rev: number, files: Record<string, Buffer | string>): Promise<{ code: number; stderr: string }> {
    await writeTree(join(this.dir, `src${rev}`), files)
    return cliIn(this.net, 'h1', this.coreEnv(await this.creds('publisher', 'publisher')), 'publish', join(this.dir, `src${rev}`), '--product', product, '--key', this.keyFile, '--trust', this.trust)
  }

  /** What the site's server holds of `product`, as the site's own proxy sees it (its heartbeats do not cross the WAN). */
  async siteSynced(site: string, product: string): Promise<Record<string, number>> {
    const r = await cliIn(this.net, site, await this.siteEnv(site), 'stats', '--json')
    if (r.code !== 0) return {}
    return Object.fromEntries((JSON.parse(r.stdout) as { servers: { id: string; synced: Record<string, number> }[] }).servers.map((x) => [x.id, x.synced[product] ?? 0]))
  }

  /** Resolves once the site's server holds `rev` of `product` (polled every 200 ms, bounded by `timeoutMs`). */
  async waitSynced(site: string, product: string, rev: number, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs
    let seen: Record<string, number> = {}
    while (Date.now() < deadline) {
      seen = await this.siteSynced(site, product)
      if (seen[`${site}-s1`] === rev) return
      await new Promise((r) => setTimeout(r, 200))
    }
    throw new Error(`${site} did not sync r${rev} of ${product} within ${timeoutMs} ms (its servers hold ${JSON.stringify(seen)})`)
  }

  /** Bytes both ends of every site's WAN link sent (the interfaces' own counters). */
  wanBytes(): number {
    return SITES.reduce((sum, s) => sum + this.net.bytes(s.core, WAN) + this.net.bytes(s.name, WAN), 0)
  }

  wc(site: string, i: number): string {
    return join(this.dir, `${site}-wc${i}`)
  }

  /** Sets a site's WAN link down or up (at the site's end). */
  setWan(site: string, state: 'up' | 'down'): void {
    inNs(this.net.host(site).ns, 'ip', 'link', 'set', WAN, state)
  }

  async teardown(): Promise<string[]> {
    await this.net.teardown()
    return this.net.leftovers()
  }
}
