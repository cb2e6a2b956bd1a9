// Issue 16 item 4, the console's doors, over real HTTP to 127.0.0.1: `upswarm console` (its own
// process, admin creds and TLS on a cluster of the test's own) with the product's publish key as
// its rollout key. The page, its data and its controls need the per-run token; a control from
// another origin, a form's content type, a GET or a foreign Host is refused; bad input (percent
// 150, an unknown revision or product, a malformed product) gets an error that names it and
// appends no statement; a good control appends one and the state shows it. Without a key the
// controls say why they are off. Alerts reach the state as they are stored, each once, in order.
// With --inspect, the sampler's statechart is inspected like any role's.
import { request } from 'node:http'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { publish } from '../../actors/publisher/publish.ts'
import type { NatsCluster } from '../../infra/cluster/nats-cluster.ts'
import { appendRoot, newestRoot } from '../../infra/formats/meta-stream.ts'
import { rootBody, rootText, signRoot } from '../../infra/formats/root.ts'
import { readRollouts } from '../../infra/formats/rollout-stream.ts'
import { jetStreamAlertSink } from '../../infra/nats/alert-sink.ts'
import { inspectSubject } from '../../infra/nats/names.ts'
import { connectNats, type NatsConnection } from '../../infra/nats/connect.ts'
import { generatePublisherKey, writeKeyFile } from '../../infra/release/keys.ts'
import { newProduct, startOwnCluster, tempDir } from '../helpers/cluster.ts'
import { startConsoleProcess, type ConsoleProcess } from '../helpers/console-process.ts'
import { writeTree } from '../helpers/trees.ts'

describe('console doors', { timeout: 120_000 }, () => {
  let dir: { path: string; cleanup: () => Promise<void> }
  let cluster: NatsCluster
  let admin: NatsConnection
  let withKey: ConsoleProcess
  let withoutKey: ConsoleProcess
  let client: NatsConnection
  const product = newProduct()
  const pub = generatePublisherKey()
  const rootKey = generatePublisherKey()

  beforeAll(async () => {
    dir = await tempDir('upswarm-console-')
    const own = await startOwnCluster(dir.path, 1)
    cluster = own.cluster
    const caFile = own.authority.paths.caFile
    admin = await own.connect('console-admin')
    client = await own.connect('console-client', { kind: 'client', name: 'console-c1' })
    const publisher = await connectNats(cluster.urls, 'console-publisher', { creds: (await own.authority.issue({ kind: 'publisher', name: 'publisher' })).file, tlsCa: caFile })
    const root = signRoot(rootBody({ version: 1, expiresMs: Date.now() + 86_400_000, rootKeys: [rootKey.publicKey], rootThreshold: 1, freshKeys: [rootKey.publicKey], products: { [product]: { publish: [pub.publicKey] } } }), [rootKey])
    await appendRoot(admin, rootText(root))
    await writeTree(join(dir.path, 'src1'), { 'app.txt': 'version 1\n' })
    await publish({ nc: publisher, src: join(dir.path, 'src1'), product, key: pub, trust: join(dir.path, 'trust.json'), skipFeed: true })
    await publisher.close()
    const keyFile = join(dir.path, 'rollout-key.json')
    await writeKeyFile(keyFile, pub)
    const env: NodeJS.ProcessEnv = { ...process.env, UPSWARM_NATS: cluster.urls.join(','), UPSWARM_CREDS: (await own.authority.issue({ kind: 'admin', name: 'console' })).file, UPSWARM_TLS_CA: caFile }
    delete env.UPSWARM_ROLLOUT_KEY
    ;[withKey, withoutKey] = await Promise.all([startConsoleProcess(env, '--rollout-key', keyFile, '--sample-interval', '1', '--inspect'), startConsoleProcess(env, '--sample-interval', '1')])
  }, 120_000)

  afterAll(async () => {
    await withKey?.stop()
    await withoutKey?.stop()
    await client?.close()
    await admin?.close()
    await cluster?.stop()
    await dir?.cleanup()
  })

  const statements = async (): Promise<number> => (await readRollouts(admin, product, (await newestRoot(admin))!.signed.root, true)).statements.length
  const post = (c: ConsoleProcess, body: unknown, headers: Record<string, string> = {}): Promise<Response> =>
    fetch(new URL('/api/rollout', c.origin), { method: 'POST', headers: { authorization: `Bearer ${c.token}`, 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) })
  const errorOf = async (r: Response): Promise<{ code: string; message: string }> => ((await r.json()) as { error: { code: string; message: string } }).error

  it('console — the page, its data and its controls need the per-run token; without it or with another, 401 and no statement', async () => {
    expect(withKey.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/\?token=[A-Za-z0-9_-]{32}$/)
    expect(withKey.token).not.toBe(withoutKey.token)
    expect((await fetch(withKey.origin)).status).toBe(401)
    expect(await (await fetch(withKey.origin)).text()).toMatch(/needs its token/)
    expect((await fetch(`${withKey.origin}?token=${withoutKey.token}`)).status).toBe(401)
    const page = await fetch(withKey.url)
    expect(page.status).toBe(200)
    expect(page.headers.get('content-security-policy')).toContain("frame-ancestors 'none'")
    expect(await page.text()).toContain('fleet console')
    expect((await fetch(new URL('/api/state', withKey.origin))).status).toBe(401)
    expect((await fetch(new URL('/api/state', withKey.origin), { headers: { authorization: `Bearer ${withoutKey.token}` } })).status).toBe(401)
    const noToken = await fetch(new URL('/api/rollout', withKey.origin), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ product, rev: 1, action: 'percent', percent: 50 }) })
    expect(noToken.status).toBe(401)
    expect((await errorOf(noToken)).message).toMatch(/needs the console's token/)
    expect((await post({ ...withKey, token: withoutKey.token }, { product, rev: 1, action: 'percent', percent: 50 })).status).toBe(401)
    expect(await statements()).toBe(0)
  })

  it('console — a control from another origin, with a form content type, by GET, or to a foreign Host is refused and appends nothing', async () => {
    const good = { product, rev: 1, action: 'percent', percent: 50 }
    const foreign = await post(withKey, good, { origin: 'http://evil.example' })
    expect(foreign.status).toBe(403)
    expect((await errorOf(foreign)).message).toMatch(/from http:\/\/evil\.example: only the console's own page/)
    const form = await post(withKey, 'product=x', { 'content-type': 'application/x-www-form-urlencoded' })
    expect(form.status).toBe(415)
    expect((await fetch(new URL('/api/rollout', withKey.origin), { headers: { authorization: `Bearer ${withKey.token}` } })).status).toBe(405)
    // DNS rebinding: a request naming another host is not this console's, whatever it carries.
    const port = Number(new URL(withKey.origin).port)
    const rebound = await new Promise<number>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/api/state', headers: { host: `evil.example:${port}`, authorization: `Bearer ${withKey.token}` } }, (res) => { res.resume(); resolve(res.statusCode ?? 0) })
      req.on('error', reject)
      req.end()
    })
    expect(rebound).toBe(403)
    expect(await statements()).toBe(0)
  })

  it('console — bad input to the controls (percent 150, unknown revision, unknown product, malformed fields) gets an error naming it and appends no statement', async () => {
    const cases: Array<[unknown, number, RegExp]> = [
      [{ product, rev: 1, action: 'percent', percent: 150 }, 400, /percent 150: the share of the fleet is from 0 to 100/],
      [{ product, rev: 1, action: 'percent', percent: 12.345 }, 400, /percent 12\.345: .*at most two decimals/],
      [{ product, rev: 1, action: 'percent' }, 400, /action "percent" needs "percent"/],
      [{ product, rev: 7, action: 'percent', percent: 10 }, 404, new RegExp(`product ${product} has no r7 on the release stream`)],
      [{ product: '00000000-0000-4000-8000-000000000000', rev: 1, action: 'percent', percent: 10 }, 400, /product 00000000-0000-4000-8000-000000000000 is not in root version 1/],
      [{ product: 'not-a-uuid', rev: 1, action: 'pause' }, 400, /product "not-a-uuid": expected a lowercase product UUID/],
      [{ product, rev: 0, action: 'pause' }, 400, /revision 0: expected a whole number from 1 up/],
      [{ product, rev: 1, action: 'launch' }, 400, /control request: action: /],
      [{ product, rev: 1, action: 'pause' }, 400, /has no rollout statement to pause/],
      ['{"product": ', 400, /the body is not JSON/],
    ]
    for (const [body, status, message] of cases) {
      const r = await post(withKey, body)
      expect(r.status, JSON.stringify(body)).toBe(status)
      expect((await errorOf(r)).message, JSON.stringify(body)).toMatch(message)
    }
    expect(await statements()).toBe(0)
  })

  it('console — without a key the controls are off and say why; with one a control appends a signed statement and the state shows it', async () => {
    const state = async (c: ConsoleProcess): Promise<{ controls: { enabled: boolean; reason?: string }; fleet: unknown; series: unknown[] }> =>
      (await (await fetch(new URL('/api/state', c.origin), { headers: { authorization: `Bearer ${c.token}` } })).json()) as never
    const off = await state(withoutKey)
    expect(off.controls).toEqual({ enabled: false, reason: expect.stringMatching(/no rollout key: start it with --rollout-key FILE/) })
    const refused = await post(withoutKey, { product, rev: 1, action: 'percent', percent: 50 })
    expect(refused.status).toBe(403)
    expect((await errorOf(refused)).message).toMatch(/the controls are off/)
    expect(await statements()).toBe(0)

    expect((await state(withKey)).controls).toEqual({ enabled: true, keys: [pub.publicKey] })
    const ok = await post(withKey, { product, rev: 1, action: 'percent', percent: 50 })
    expect(ok.status).toBe(200)
    expect(((await ok.json()) as { result: { state: string; percent: number; seq: number } }).result).toMatchObject({ state: 'active', percent: 5_000, seq: 1 })
    expect(await statements()).toBe(1)
    const paused = await post(withKey, { product, rev: 1, action: 'pause' })
    expect(((await paused.json()) as { result: { state: string; percent: number } }).result).toMatchObject({ state: 'paused', percent: 5_000 })
    expect(await statements()).toBe(2)
    // No client has reported: the product of the root is listed with r1 and its rollout as the page's next reading says.
    await expect.poll(async () => (await state(withKey)).fleet, { timeout: 15_000 })
      .toMatchObject({ products: [{ product, published: 1, clients: [], releases: [{ rev: 1, clients: [], rollout: { state: 'paused', percent: 5_000, seq: 2 } }] }] })
    await expect.poll(async () => (await state(withKey)).series.length, { timeout: 15_000 }).toBeGreaterThan(1)
  })

  it('console — alerts reach the state as the stream stores them: each once, oldest first, with who sent it', async () => {
    type State = { alerts: Array<{ seq: number; from: string; product: string; body: { path?: string } }> }
    const alerts = async (): Promise<State['alerts']> => ((await (await fetch(new URL('/api/state', withKey.origin), { headers: { authorization: `Bearer ${withKey.token}` } })).json()) as State).alerts
    const sink = jetStreamAlertSink(client)
    await sink.publish({ product, clientId: 'console-c1', path: 'etc/app.ini', rev: 1, targetRev: 2 })
    await expect.poll(async () => (await alerts()).map((a) => a.body.path), { timeout: 15_000 }).toEqual(['etc/app.ini'])
    await sink.publish({ product, clientId: 'console-c1', path: 'bin/tool', rev: 1, targetRev: 2 })
    await expect.poll(async () => (await alerts()).map((a) => a.body.path), { timeout: 15_000 }).toEqual(['etc/app.ini', 'bin/tool'])
    const listed = await alerts()
    expect(listed.map((a) => ({ from: a.from, product: a.product }))).toEqual([{ from: 'console-c1', product }, { from: 'console-c1', product }])
    expect(listed[1]!.seq).toBeGreaterThan(listed[0]!.seq)
  })

  it('console — with --inspect, its sampler statechart goes out on upswarm.inspect.console.<identity>, reading after reading', async () => {
    const sub = admin.subscribe(inspectSubject('console', 'console'))
    // A reading a second: both states within a few; the deadline ends the wait with what was seen.
    const deadline = setTimeout(() => sub.unsubscribe(), 15_000)
    const seen: string[] = []
    for await (const m of sub) {
      const e = m.json<{ type: string; snapshot?: { value?: unknown } }>()
      if (e.type === '@xstate.snapshot' && typeof e.snapshot?.value === 'string') seen.push(e.snapshot.value)
      if (seen.includes('sampling') && seen.includes('waiting')) break
    }
    clearTimeout(deadline)
    expect(seen).toEqual(expect.arrayContaining(['sampling', 'waiting']))
  })
})
