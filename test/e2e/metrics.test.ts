// Issue 16 item 5 in an `up` deployment: endpoints.json names each role's metrics URL (proxy,
// tracker, every server); every one, and a sharing daemon's, serves text that parses strictly as
// Prometheus exposition (test/helpers/prometheus.ts); and a client's first checkout makes the
// proxy's and the servers' request counters and the servers' bytes sent grow.
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { publish } from '../../actors/publisher/publish.ts'
import type { Endpoints } from '../../actors/launcher/index.ts'
import { addProductToDeployment } from '../../actors/root-holder/index.ts'
import { connectNats } from '../../infra/nats/connect.ts'
import { PROJECT_ROOT } from '../../infra/project-root.ts'
import { generatePublisherKey } from '../../infra/release/keys.ts'
import { newProduct, tempDir } from '../helpers/cluster.ts'
import { parsePrometheus, total, type PromFamily } from '../helpers/prometheus.ts'
import { randomContent, writeTree } from '../helpers/trees.ts'

const CLI = join(PROJECT_ROOT, 'bin', 'upswarm.cjs')
const exec = promisify(execFile)

/** Starts a process and resolves with the JSON of its `READY {…}` line (or its first stdout line, for `up`). */
async function started(child: ChildProcess, ready: (line: string) => string | undefined): Promise<Record<string, unknown>> {
  let stderr = ''
  child.stderr!.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-4000) })
  const lines = createInterface({ input: child.stdout! })
  return Promise.race([
    new Promise<Record<string, unknown>>((resolve) => lines.on('line', (line) => {
      const json = ready(line)
      if (json !== undefined) resolve(JSON.parse(json) as Record<string, unknown>)
    })),
    once(child, 'exit').then(([code]) => { throw new Error(`exited (code ${code}) before it was ready:\n${stderr}`) }),
  ])
}

async function scrape(url: string): Promise<Map<string, PromFamily>> {
  const res = await fetch(url)
  expect(res.status).toBe(200)
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/)
  return parsePrometheus(await res.text(), url)
}

describe('metrics', { timeout: 240_000 }, () => {
  let dir: { path: string; cleanup: () => Promise<void> }
  const children: ChildProcess[] = []
  let ep: Endpoints

  beforeAll(async () => {
    dir = await tempDir('upswarm-metrics-')
    const up = spawn(process.execPath, [CLI, 'up', '--dir', dir.path, '--roles', 'nats,dht,servers,proxy,tracker,notary', '--servers', '2', '--nats-nodes', '1'], { stdio: ['ignore', 'pipe', 'pipe'] })
    children.push(up)
    await started(up, (line) => line)
    ep = JSON.parse(readFileSync(join(dir.path, 'endpoints.json'), 'utf8')) as Endpoints
  }, 240_000)

  afterAll(async () => {
    for (const child of children.reverse()) {
      if (child.exitCode !== null || child.signalCode !== null) continue
      const exited = once(child, 'exit')
      child.kill('SIGTERM')
      await exited
    }
    await dir?.cleanup()
  })

  it('metrics — every role `up` starts serves Prometheus text at the URL endpoints.json names, and a client update makes the request counters grow', async () => {
    const servers = Object.entries(ep.metrics?.servers ?? {})
    expect(servers.map(([id]) => id).sort()).toEqual(['s1', 's2'])
    const urls = [ep.metrics!.proxy!, ep.metrics!.tracker!, ...servers.map(([, url]) => url)]
    expect(ep.metrics!.notary).toMatch(/^http:\/\/127\.0\.0\.1:[0-9]+\/metrics$/)
    const notaryBefore = await scrape(ep.metrics!.notary!)
    expect(total(notaryBefore, 'upswarm_notary_root_version')).toBe(1)
    for (const name of ['upswarm_notary_statements_total', 'upswarm_notary_halts_total', 'upswarm_notary_errors_total', 'upswarm_notary_last_statement_timestamp_seconds']) expect(notaryBefore.has(name)).toBe(true)
    for (const url of urls) expect(url).toMatch(/^http:\/\/127\.0\.0\.1:[0-9]+\/metrics$/)
    const scrapeAll = async () => {
      const [proxy, tracker, ...rest] = await Promise.all(urls.map(scrape))
      return { proxy: proxy!, tracker: tracker!, servers: rest }
    }
    const before = await scrapeAll()
    for (const name of ['upswarm_proxy_requests_total', 'upswarm_proxy_request_errors_total', 'upswarm_proxy_pool_servers', 'upswarm_proxy_assigned_total', 'upswarm_proxy_server_bytes_sent_total']) expect(before.proxy.has(name)).toBe(true)
    for (const name of ['upswarm_tracker_requests_total', 'upswarm_tracker_peers', 'upswarm_tracker_dropped_writes_total']) expect(before.tracker.has(name)).toBe(true)
    for (const s of before.servers) {
      for (const name of ['upswarm_server_requests_total', 'upswarm_server_bytes_sent_total', 'upswarm_server_synced_revision', 'upswarm_server_sync_lag_messages', 'upswarm_server_swarm_peers']) expect(s.has(name)).toBe(true)
    }
    // endpoints.json is written once every role answers; the proxy may have heard one server's
    // heartbeat by then and not yet the other's: the pool gauge gets there within heartbeats.
    await expect.poll(async () => total(await scrape(ep.metrics!.proxy!), 'upswarm_proxy_pool_servers', { state: 'healthy' }), { timeout: 30_000, interval: 250 }).toBe(2)

    // A release, synced by both servers (their sync lag back to 0), then a client's first checkout through the proxy.
    const product = newProduct()
    const key = generatePublisherKey()
    await writeTree(join(dir.path, 'src'), { 'a.bin': randomContent(300_000), 'b.txt': 'b\n' })
    const publisher = await connectNats(ep.nats!, 'metrics-publisher', { creds: ep.creds!.publisher, tlsCa: ep.tlsCa! })
    // The product joins the root (as `upswarm root edit --dir D --add-product` does): the notary signs its freshness.
    const admin = await connectNats(ep.nats!, 'metrics-admin', { creds: ep.creds!.admin, tlsCa: ep.tlsCa! })
    try {
      await addProductToDeployment(admin, { root: ep.root!, rootKey: ep.rootKey! }, product, key.publicKey)
    } finally {
      await admin.close()
    }
    try {
      await publish({ nc: publisher, src: join(dir.path, 'src'), product, key, trust: ep.trust!, skipFeed: true })
    } finally {
      await publisher.close()
    }
    await expect.poll(async () => (await Promise.all(servers.map(async ([, url]) => {
      const m = await scrape(url)
      return total(m, 'upswarm_server_synced_revision', { product }) === 1 && total(m, 'upswarm_server_sync_lag_messages') === 0
    }))).every(Boolean), { timeout: 60_000, interval: 250 }).toBe(true)
    const synced = await scrapeAll()
    // The notary signed the product's freshness on its release (statements, and when).
    await expect.poll(async () => total(await scrape(ep.metrics!.notary!), 'upswarm_notary_statements_total', { product }), { timeout: 30_000, interval: 250 }).toBeGreaterThanOrEqual(1)
    const notary = await scrape(ep.metrics!.notary!)
    expect(total(notary, 'upswarm_notary_root_version')).toBe(2)
    expect(total(notary, 'upswarm_notary_last_statement_timestamp_seconds', { product })).toBeGreaterThan(Date.now() / 1000 - 600)
    const env = { ...process.env, UPSWARM_NATS: ep.nats!.join(','), UPSWARM_CREDS: ep.creds!.client, UPSWARM_TLS_CA: ep.tlsCa!, UPSWARM_TRACKER: '', UPSWARM_BOOTSTRAP: '' }
    const wc = join(dir.path, 'wc')
    const init = JSON.parse((await exec(process.execPath, [CLI, 'init', wc, '--product', product, '--pubkey', key.publicKey, '--json'], { env })).stdout) as { to: number; bytesFromServers: number }
    expect(init).toMatchObject({ to: 1, bytesFromServers: 300_002 })
    const after = await scrapeAll()
    const grew = (name: string, of: (x: typeof after) => Map<string, PromFamily>[]): number =>
      of(after).reduce((n, m) => n + total(m, name), 0) - of(synced).reduce((n, m) => n + total(m, name), 0)
    // revs/manifest through the proxy; ranges straight from the server it assigned.
    expect(grew('upswarm_proxy_requests_total', (x) => [x.proxy])).toBeGreaterThanOrEqual(2)
    expect(total(after.proxy, 'upswarm_proxy_requests_total', { op: 'assign' }) - total(synced.proxy, 'upswarm_proxy_requests_total', { op: 'assign' })).toBeGreaterThanOrEqual(1)
    expect(grew('upswarm_server_requests_total', (x) => x.servers)).toBeGreaterThanOrEqual(2)
    // Over NATS (tree nodes, batches of small files) or the bulk port (ranges): issue 14 item 2.
    const sent = (x: typeof after): number => x.servers.reduce((n, m) => n + total(m, 'upswarm_server_bytes_sent_total', { via: 'nats' }) + total(m, 'upswarm_server_bytes_sent_total', { via: 'bulk' }), 0)
    expect(sent(after) - sent(synced)).toBeGreaterThanOrEqual(300_002)

    // The sharing daemon on the client's working copy: its own metrics, with its revision and stage.
    const daemon = spawn(process.execPath, [CLI, 'daemon', wc, '--metrics-port', '0', '--json'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...env, UPSWARM_TRACKER: ep.trackerHttp! } })
    children.push(daemon)
    const ready = await started(daemon, (line) => (line.startsWith('READY ') ? line.slice('READY '.length) : undefined))
    expect(String(ready.metrics)).toMatch(/^http:\/\/127\.0\.0\.1:[0-9]+\/metrics$/)
    const d = await scrape(String(ready.metrics))
    expect(total(d, 'upswarm_daemon_installed_revision')).toBe(1)
    const stage = total(d, 'upswarm_daemon_rollout_stage')
    expect(stage).toBeGreaterThanOrEqual(0)
    expect(stage).toBeLessThan(10_000)
    for (const name of ['upswarm_daemon_bytes_received_total', 'upswarm_daemon_bytes_sent_total', 'upswarm_daemon_piece_failures_total', 'upswarm_daemon_peers_connected', 'upswarm_daemon_updates_total']) expect(d.has(name)).toBe(true)
    process.stdout.write(`metrics: ${urls.length + 1} endpoints scraped, ${[after.proxy, after.tracker, ...after.servers, d].reduce((n, m) => n + m.size, 0)} families\n`)
  })
})
