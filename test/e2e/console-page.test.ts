// Issue 16 item 4 in a real browser: `upswarm console` (its own process, admin creds and TLS, the
// product's publish key as its rollout key) beside a small deployment of the test's own: a
// repository server, the proxy, the tracker and four `--auto` sharing daemons reporting to the
// fleet view (each its own client identity, two of them in the first half of the fleet). Headless
// Chromium (Debian's, driven by playwright-core) opens the page: it shows the fleet at r1; after r2
// is published, a rollout at 50% is started by filling in and clicking the page's controls
// (percent 150 first: refused on the page, nothing appended); exactly the two clients in the first
// half move to r2 and the page shows them there; resumed at 100% from the page, all four reach r2
// and the page shows it, with the server synced to r2 and an alert a client sent. The page as it ends is the README's picture (docs/images/console.png).
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type BrowserContext, type Locator, type Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { waitFor } from 'xstate'
import { rollout } from '../../actors/operator/rollout.ts'
import { startProxy, type Proxy } from '../../actors/proxy/index.ts'
import { publish } from '../../actors/publisher/publish.ts'
import { startRepoServer, type RepoServer } from '../../actors/repo-server/index.ts'
import { startDaemon, type Daemon } from '../../actors/share-daemon/index.ts'
import { serverSource } from '../../actors/share-daemon/sources.ts'
import { startTracker, type Tracker } from '../../actors/tracker/index.ts'
import { init, openUpdate } from '../../actors/updater/index.ts'
import type { NatsCluster } from '../../infra/cluster/nats-cluster.ts'
import { appendRoot, newestRoot } from '../../infra/formats/meta-stream.ts'
import { rootBody, rootText, signRoot } from '../../infra/formats/root.ts'
import { readRollouts } from '../../infra/formats/rollout-stream.ts'
import { stageOf } from '../../infra/formats/rollout.ts'
import { jetStreamAlertSink } from '../../infra/nats/alert-sink.ts'
import { connectNats, type NatsConnection } from '../../infra/nats/connect.ts'
import { credsClaims } from '../../infra/nats/identity.ts'
import { PROJECT_ROOT } from '../../infra/project-root.ts'
import { generatePublisherKey, writeKeyFile } from '../../infra/release/keys.ts'
import { TrustStore } from '../../infra/release/trust.ts'
import { newProduct, startOwnCluster, tempDir } from '../helpers/cluster.ts'
import { startConsoleProcess, type ConsoleProcess } from '../helpers/console-process.ts'
import { randomContent, writeTree } from '../helpers/trees.ts'
import { stopFleet } from '../helpers/fleet-teardown.ts'

const CHROMIUM = '/usr/bin/chromium'
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync']
const SCREENSHOT = join(PROJECT_ROOT, 'docs', 'images', 'console.png')
const HALF = 5_000
/** A moved client reports within the fleet report's 10 s interval; the page reads it within a second or two more. */
const MOVE_MS = 45_000

interface Client { name: string; inStage: boolean; nc: NatsConnection; daemon: Daemon; updates: string[] }

describe('console page in Chromium', { timeout: 240_000 }, () => {
  let dir: { path: string; cleanup: () => Promise<void> }
  let cluster: NatsCluster
  let admin: NatsConnection
  let publisher: NatsConnection
  let server: RepoServer
  let proxy: Proxy
  let tracker: Tracker
  let fleetConsole: ConsoleProcess | undefined
  let browser: BrowserContext | undefined
  let profile: string | undefined
  const clients: Client[] = []
  const product = newProduct()
  const pub = generatePublisherKey()
  const rootKey = generatePublisherKey()

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(`${CHROMIUM} is missing: this test drives Debian's chromium. scripts/ensure-tools.mjs installs it before \`npm test\` ` +
        '(apt-get install chromium); it could not here, so run as root: apt-get update && apt-get install -y chromium')
    }
    dir = await tempDir('upswarm-console-page-')
    const own = await startOwnCluster(dir.path, 1)
    cluster = own.cluster
    const caFile = own.authority.paths.caFile
    admin = await own.connect('console-page-admin')
    publisher = await connectNats(cluster.urls, 'console-page-publisher', { creds: (await own.authority.issue({ kind: 'publisher', name: 'publisher' })).file, tlsCa: caFile })
    const root = signRoot(rootBody({ version: 1, expiresMs: Date.now() + 86_400_000, rootKeys: [rootKey.publicKey], rootThreshold: 1, freshKeys: [rootKey.publicKey], products: { [product]: { publish: [pub.publicKey] } } }), [rootKey])
    await appendRoot(admin, rootText(root))
    await writeTree(join(dir.path, 'src1'), { 'app.txt': 'version 1\n', 'lib/a.bin': randomContent(100_000) })
    await writeTree(join(dir.path, 'src2'), { 'app.txt': 'version 2\n', 'lib/a.bin': randomContent(100_000) })
    const trust = join(dir.path, 'trust.json')
    await publish({ nc: publisher, src: join(dir.path, 'src1'), product, key: pub, trust, skipFeed: true })
    server = await startRepoServer({ nc: admin, id: `console-${process.pid}`, dataDir: join(dir.path, 'server'), trust: await new TrustStore(trust).ready() })
    proxy = await startProxy({ nc: admin })
    tracker = await startTracker({ nc: admin, id: 'console' })
    await waitFor(server.actor, () => (server.store.synced[product] ?? 0) >= 1, { timeout: 60_000 })
    // Staged from now on: r1 at 100%; r2 waits for the statement the page will make.
    await rollout({ nc: publisher, product, rev: 1, action: { percent: 10_000 }, keys: [pub] })

    // Client identities until two fall in the first half of the fleet and two outside it.
    const chosen: { name: string; file: string; inStage: boolean }[] = []
    for (let i = 0; chosen.length < 4 && i < 200; i++) {
      const issued = await own.authority.issue({ kind: 'client', name: `console-c${i}` })
      const inStage = stageOf(product, credsClaims(await readFile(issued.file, 'utf8'), issued.file).sub) < HALF
      if (chosen.filter((c) => c.inStage === inStage).length < 2) chosen.push({ name: `console-c${i}`, file: issued.file, inStage })
    }
    expect(chosen.map((c) => c.inStage).sort()).toEqual([false, false, true, true])
    for (const c of chosen) {
      const nc = await connectNats(cluster.urls, `console-${c.name}`, { creds: c.file, tlsCa: caFile })
      const wc = join(dir.path, c.name)
      await init(wc, { product, root: { text: rootText(root), where: 'root.json' }, source: serverSource(nc, product), rev: 1 })
      const daemon = await startDaemon({ dir: wc, nc, updater: openUpdate, auto: true, fleet: true, host: '127.0.0.1', announceIntervalMs: 1_000 })
      const client: Client = { name: c.name, inStage: c.inStage, nc, daemon, updates: [] }
      daemon.on('update.started', (from, to) => client.updates.push(`r${from}→r${to}`))
      clients.push(client)
    }

    const keyFile = join(dir.path, 'rollout-key.json')
    await writeKeyFile(keyFile, pub)
    const env: NodeJS.ProcessEnv = { ...process.env, UPSWARM_NATS: cluster.urls.join(','), UPSWARM_CREDS: (await own.authority.issue({ kind: 'admin', name: 'console' })).file, UPSWARM_TLS_CA: caFile }
    fleetConsole = await startConsoleProcess(env, '--rollout-key', keyFile, '--sample-interval', '1', '--inspect-url', 'http://127.0.0.1:8090/')
    profile = await mkdtemp(join(tmpdir(), 'upswarm-chromium-'))
    browser = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, viewport: { width: 1280, height: 900 } })
  }, 240_000)

  afterAll(async () => {
    await browser?.close()
    await fleetConsole?.stop()
    await stopFleet({ clients, tracker, proxy, server, publisher, admin, cluster, dir })
    if (profile) await rm(profile, { recursive: true, force: true })
  })

  const statementsOf = async (rev: number): Promise<number> =>
    (await readRollouts(admin, product, (await newestRoot(admin))!.signed.root, true)).statements.filter((s) => s.rollout.rev === rev).length
  /** What the page's clients table says each client is on, by name. */
  const pageRevs = async (page: Page): Promise<Record<string, string>> => Object.fromEntries(await Promise.all(clients.map(async (c) =>
    [c.name, (await page.locator(`#product-${product} table.clients tr[data-client="${c.name}"] .rev`).textContent({ timeout: 1_000 }).catch(() => null)) ?? '?'])))
  const expectRevs = (want: (c: Client) => number): Record<string, string> => Object.fromEntries(clients.map((c) => [c.name, `r${want(c)}`]))
  const control = async (row: Locator, action: string, percent?: string): Promise<void> => {
    if (percent !== undefined) await row.locator('input.percent').fill(percent)
    await row.locator(`button[data-action="${action}"]`).click()
  }

  it('console — a rollout started from the page at 50% reaches exactly the clients in the first half and the page shows them move; resumed at 100% from the page, all; the pool shows the server synced to r2 and an alert a client sent appears', async () => {
    const page = await browser!.newPage()
    // Anything the page asks for beyond the console itself would be a CDN: there must be none.
    const elsewhere: string[] = []
    page.on('request', (req) => { if (!req.url().startsWith(fleetConsole!.origin)) elsewhere.push(req.url()) })
    await page.goto(fleetConsole!.url)
    await page.locator('#status', { hasText: 'live' }).waitFor({ timeout: 10_000 })
    const row = (rev: number): Locator => page.locator(`#product-${product} table.releases tr[data-rev="${rev}"]`)
    const message = page.locator('#message')

    // The fleet at r1: four clients, the rollout at 100%.
    await expect.poll(() => row(1).locator('.clients').textContent(), { timeout: 30_000 }).toBe('4')
    await expect.poll(() => row(1).locator('.rollout').textContent()).toBe('active at 100% (#1)')
    await expect.poll(() => pageRevs(page)).toEqual(expectRevs(() => 1))
    await expect(page.locator('#inspect-link').getAttribute('href')).resolves.toBe('http://127.0.0.1:8090/')
    await expect.poll(() => page.locator('#pool-body tr[data-server]').count(), { timeout: 15_000 }).toBe(1)

    await publish({ nc: publisher, src: join(dir.path, 'src2'), product, key: pub, trust: join(dir.path, 'trust.json'), skipFeed: true })
    await waitFor(server.actor, () => (server.store.synced[product] ?? 0) >= 2, { timeout: 60_000 })
    // Published, no client on it, no statement: listed so that it can be rolled out.
    await expect.poll(() => row(2).locator('.rollout').textContent(), { timeout: 15_000 }).toBe('not staged')

    // Bad input is refused on the page and appends nothing.
    await control(row(2), 'percent', '150')
    await expect.poll(() => message.textContent(), { timeout: 10_000 }).toMatch(/^r2: not changed: percent 150: the share of the fleet is from 0 to 100/)
    await expect(message.getAttribute('class')).resolves.toBe('error')
    expect(await statementsOf(2)).toBe(0)

    // 50% from the page: the two clients in the first half move, the other two stay.
    await control(row(2), 'percent', '50')
    await expect.poll(() => message.textContent(), { timeout: 10_000 }).toBe('r2: active at 50% (statement 2)')
    expect(await statementsOf(2)).toBe(1)
    await expect.poll(() => row(2).locator('.rollout').textContent(), { timeout: 10_000 }).toBe('active at 50% (#2)')
    await expect.poll(() => clients.map((c) => c.daemon.rev()), { timeout: MOVE_MS }).toEqual(clients.map((c) => (c.inStage ? 2 : 1)))
    await expect.poll(() => pageRevs(page), { timeout: MOVE_MS }).toEqual(expectRevs((c) => (c.inStage ? 2 : 1)))
    await expect.poll(() => row(2).locator('.clients').textContent()).toBe('2')
    await expect.poll(() => row(1).locator('.clients').textContent()).toBe('2')
    expect(clients.filter((c) => !c.inStage).flatMap((c) => c.updates)).toEqual([])

    // Resumed at 100% from the page: all four on r2.
    await control(row(2), 'resume', '100')
    await expect.poll(() => message.textContent(), { timeout: 10_000 }).toBe('r2: active at 100% (statement 3, was active at 50%)')
    await expect.poll(() => clients.map((c) => c.daemon.rev()), { timeout: MOVE_MS }).toEqual(clients.map(() => 2))
    await expect.poll(() => pageRevs(page), { timeout: MOVE_MS }).toEqual(expectRevs(() => 2))
    await expect.poll(() => row(2).locator('.clients').textContent()).toBe('4')
    await expect.poll(() => row(1).locator('.clients').textContent()).toBe('0')
    expect(clients.flatMap((c) => c.updates)).toEqual(clients.map(() => 'r1→r2'))
    // The chart drew both revisions over time; the offload counts the updates' bytes.
    await expect(page.locator(`#product-${product} svg.chart path[data-rev="1"]`).count()).resolves.toBe(1)
    await expect(page.locator(`#product-${product} svg.chart path[data-rev="2"]`).count()).resolves.toBe(1)
    await expect(page.locator(`#product-${product} .offload`).textContent()).resolves.toMatch(/from peers, .* from servers; peer share \d/)
    await expect.poll(() => page.locator('#pool-body tr[data-server] .synced').textContent(), { timeout: 10_000 }).toBe(`${product.slice(0, 8)}…=r2`)
    // An alert a client sends (R-STATUS-3) appears with who sent it.
    await jetStreamAlertSink(clients[0]!.nc).publish({ product, clientId: clients[0]!.name, path: 'etc/app.ini', rev: 2, targetRev: 2 })
    await expect.poll(() => page.locator('#alert-list li').textContent(), { timeout: 15_000 }).toContain(`${clients[0]!.name}: etc/app.ini: changed by hand and out of date (at r2)`)
    expect(elsewhere).toEqual([])

    // The README's picture: written when missing or asked for (UPSWARM_SCREENSHOT=1), so that a
    // test run does not leave a changed binary in the tree; a temporary file otherwise.
    const path = !existsSync(SCREENSHOT) || process.env.UPSWARM_SCREENSHOT === '1' ? SCREENSHOT : join(profile!, 'console.png')
    await mkdir(join(PROJECT_ROOT, 'docs', 'images'), { recursive: true })
    const png = await page.screenshot({ path, fullPage: true })
    expect(png.subarray(1, 4).toString()).toBe('PNG')
  })
})
