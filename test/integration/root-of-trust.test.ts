// Issue 10 item 7 on a real cluster (TLS, identities): roots chain on UPSWARM_META one version at
// a time, only admin appends them, and the notary vouches for each product's newest verified
// release within seconds of a publish or a root edit (docs/formats.md §1.4, §1.8, §3.2).
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { jetstream, jetstreamManager } from '@nats-io/jetstream'
import { startNotary, type Notary, type SignedStatement } from '../../actors/notary/index.ts'
import { publish } from '../../actors/publisher/publish.ts'
import { editRoot } from '../../actors/root-holder/index.ts'
import { readRootFile } from '../../infra/formats/deployment-root.ts'
import { rootText } from '../../infra/formats/root.ts'
import type { Authority } from '../../infra/auth/authority.ts'
import type { NatsCluster } from '../../infra/cluster/nats-cluster.ts'
import { PROJECT_ROOT } from '../../infra/cluster/nats-server-bin.ts'
import { rootBody, signRoot } from '../../infra/formats/root.ts'
import { appendRoot, readFresh, readRoots } from '../../infra/formats/meta-stream.ts'
import { TrustStore } from '../../infra/formats/trust-store.ts'
import type { NatsConnection } from '../../infra/nats/connect.ts'
import type { Identity } from '../../infra/nats/identity.ts'
import { META_STREAM, ROOT_SUBJECT, releaseSubject } from '../../infra/nats/names.ts'
import { headers } from '@nats-io/transport-node'
import { encodeRelease, signManifest } from '../../infra/release/manifest.ts'
import { REV_HEADER } from '../../infra/release/release-log.ts'
import { generatePublisherKey, writeKeyFile } from '../../infra/release/keys.ts'
import { writeTrust } from '../../infra/release/trust.ts'
import { newProduct, startOwnCluster, tempDir } from '../helpers/cluster.ts'
import { writeTree } from '../helpers/trees.ts'

const exec = promisify(execFile)
const CLI = join(PROJECT_ROOT, 'bin', 'upswarm.cjs')
const DAY = 86_400_000

describe('root of trust', () => {
  let dir: { path: string; cleanup: () => Promise<void> }
  let own: { cluster: NatsCluster; authority: Authority; connect(name: string, identity?: Identity): Promise<NatsConnection> }
  let admin: NatsConnection
  let client: NatsConnection
  let publisher: NatsConnection
  let notaryNc: NatsConnection
  let notary: Notary | undefined
  const rootKey = generatePublisherKey()
  const freshKey = generatePublisherKey()
  const pub1 = generatePublisherKey()
  const pub2 = generatePublisherKey()
  const product = newProduct()
  let natsArgs: string[]

  const cli = async (...args: string[]): Promise<Record<string, unknown>> =>
    JSON.parse((await exec(process.execPath, [CLI, ...args, '--json'])).stdout) as Record<string, unknown>
  const rootCount = async (): Promise<number> => {
    const info = await (await jetstreamManager(admin)).streams.info(META_STREAM, { subjects_filter: ROOT_SUBJECT })
    return info.state.subjects?.[ROOT_SUBJECT] ?? 0
  }
  /** The next statement the notary signs that satisfies `pred`; after 25 s, a failure naming `what` (the step that hung). */
  const nextStatement = (pred: (s: SignedStatement) => boolean, what = 'a statement'): Promise<SignedStatement> => new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off()
      reject(new Error(`the notary signed no ${what} within 25 s`))
    }, 25_000)
    const off = notary!.onSigned((s) => {
      if (!pred(s)) return
      off()
      clearTimeout(timer)
      resolve(s)
    })
  })

  beforeAll(async () => {
    dir = await tempDir('upswarm-root-')
    own = await startOwnCluster(dir.path)
    admin = await own.connect('root-admin')
    client = await own.connect('root-client', { kind: 'client', name: 'root-c1' })
    publisher = await own.connect('root-publisher', { kind: 'publisher', name: 'publisher' })
    notaryNc = await own.connect('root-notary', { kind: 'notary', name: 'notary' })
    await writeKeyFile(join(dir.path, 'root-key.json'), rootKey)
    const adminCreds = (await own.authority.issue({ kind: 'admin', name: 'admin' })).file
    natsArgs = ['--nats', own.cluster.urls.join(','), '--creds', adminCreds, '--tls-ca', own.authority.paths.caFile]
  }, 120_000)

  afterAll(async () => {
    await notary?.close()
    for (const nc of [admin, client, publisher, notaryNc]) await nc?.close().catch(() => {})
    await own?.cluster.stop()
    await dir?.cleanup()
  })

  it('root — init, edit and push through the CLI; a version that skips or lacks the old keys is refused and nothing is appended', async () => {
    const r1 = join(dir.path, 'r1.json')
    const r2 = join(dir.path, 'r2.json')
    expect(await cli('root', 'init', '--root-key', join(dir.path, 'root-key.json'), '--fresh-key', freshKey.publicKey, '--fresh-lifetime', '3600', '--out', r1))
      .toMatchObject({ version: 1, products: {}, fresh: { keys: [freshKey.publicKey], maxLifetime: 3600 } })
    expect(await cli('root', 'push', r1, ...natsArgs)).toMatchObject({ version: 1, seq: expect.any(Number) })
    const clientCreds = (await own.authority.issue({ kind: 'client', name: 'root-cli' })).file

    const v1 = (await readRootFile(r1)).signed.root
    const skipping = signRoot(rootBody({ version: 3, expiresMs: Date.now() + DAY, rootKeys: [rootKey.publicKey], rootThreshold: 1, freshKeys: [freshKey.publicKey], products: {} }), [rootKey])
    await expect(appendRoot(admin, rootText(skipping))).rejects.toMatchObject({ code: 'UPSWARM_E_ROLLBACK' })
    const stranger = generatePublisherKey()
    const hijack = signRoot(rootBody({ version: 2, expiresMs: Date.now() + DAY, rootKeys: [stranger.publicKey], rootThreshold: 1, freshKeys: [freshKey.publicKey], products: {} }), [stranger])
    await expect(appendRoot(admin, rootText(hijack))).rejects.toMatchObject({ code: 'UPSWARM_E_SIGNATURE', message: expect.stringMatching(/root keys of version 1/) })
    expect(await rootCount()).toBe(1)

    // Junk on the subject (only admin could put it there) is skipped and reported, never fatal.
    await jetstream(admin).publish(ROOT_SUBJECT, 'junk')
    expect(await cli('root', 'edit', r1, '--root-key', join(dir.path, 'root-key.json'), '--add-product', product, '--publish-key', pub1.publicKey, '--out', r2))
      .toMatchObject({ version: 2, products: { [product]: { publish: [pub1.publicKey], retired: [] } } })
    // Only admin appends a root: a client reads the chain, checks r2 follows it, and the cluster refuses its append.
    const denied = await exec(process.execPath, [CLI, 'root', 'push', r2, '--nats', own.cluster.urls.join(','), '--creds', clientCreds, '--tls-ca', own.authority.paths.caFile])
      .then(() => 'accepted', (err: { stderr: string }) => err.stderr)
    expect(denied).toMatch(/UPSWARM_E_PERMISSION/)
    expect(await cli('root', 'push', r2, ...natsArgs)).toMatchObject({ version: 2 })
    const skipped: number[] = []
    const texts = await readRoots(client, 1, (s) => skipped.push(s.seq))
    expect(texts).toHaveLength(2)
    expect(skipped).toHaveLength(1)
    expect(await cli('root', 'show', '--nats', own.cluster.urls.join(','), '--creds', clientCreds, '--tls-ca', own.authority.paths.caFile))
      .toMatchObject({ version: 2, root: { keys: [rootKey.publicKey] }, products: { [product]: { publish: [pub1.publicKey] } } })
    // A usage error exits 2 with what to do.
    const usage = await exec(process.execPath, [CLI, 'root', 'edit', r2, '--root-key', join(dir.path, 'root-key.json'), '--rotate', product, '--publish-key', pub2.publicKey, '--out', join(dir.path, 'x.json')])
      .then(() => ({ code: 0, stderr: '' }), (err: { code: number; stderr: string }) => err)
    expect(usage).toMatchObject({ code: 2, stderr: expect.stringMatching(/--rotate needs --last-rev N/) })
    expect(v1.version).toBe(1)
  }, 60_000)

  it('notary — signs a fresh statement within seconds of a publish, naming the revision and manifest hash; a client verifies it', async () => {
    const r1Text = (await readRootFile(join(dir.path, 'r1.json'))).text
    notary = await startNotary({ nc: notaryNc, freshKey, rootText: r1Text, dataDir: join(dir.path, 'notary'), intervalS: 3600 })
    // It follows the stream to root 2 and signs "no release yet" for the product.
    await notary.ready()
    expect(notary.store.version).toBe(2)
    expect(JSON.parse((await readFresh(client, product))!)).toMatchObject({ signed: { rev: 0, root: 2 } })
    const src = join(dir.path, 'src')
    await writeTree(src, { 'a.txt': 'one\n' })
    const signed = nextStatement((s) => s.product === product && s.rev === 1)
    const started = Date.now()
    const r = await publish({ nc: publisher, src, product, key: pub1, skipFeed: true })
    const statement = await signed
    expect(Date.now() - started).toBeLessThan(5000)
    expect(statement).toMatchObject({ rev: 1, release: r.manifestSha256, root: 2 })

    const holder = await tempDir('upswarm-root-client-')
    try {
      const store = await TrustStore.open(join(holder.path, 'trust.json'), holder.path)
      await store.pin(r1Text, 'r1.json')
      expect(await store.acceptRoots(await readRoots(client, 2), 'UPSWARM_META')).toBe(1)
      const text = await readFresh(client, product)
      expect(await store.acceptFresh(text!, 'UPSWARM_FRESH')).toBe('accepted')
      expect(store.fresh(product)?.fresh).toMatchObject({ rev: 1, release: r.manifestSha256, root: 2 })
    } finally {
      await holder.cleanup()
    }
  }, 60_000)

  it('notary — after a root edit rotating the publish key, it vouches for the new key\'s release and never for the retired key\'s later ones', async () => {
    const r2 = (await readRootFile(join(dir.path, 'r2.json'))).signed.root
    const first = (await readFresh(client, product))!
    const sha1 = (JSON.parse(first) as { signed: { release: string } }).signed.release
    const v3 = editRoot(r2, [rootKey], { rotate: [{ product, publishKey: pub2.publicKey, lastRev: 1, lastRelease: sha1 }] })
    const underV3 = nextStatement((s) => s.product === product && s.root === 3, 'statement under root version 3')
    await appendRoot(admin, rootText(v3))
    expect(await underV3).toMatchObject({ rev: 1, release: sha1 })

    // The publisher signs r2 with the new key (its trust file lists both keys of the product).
    const trust = join(dir.path, 'publisher-trust.json')
    await writeTrust(trust, { format: 1, products: { [product]: { publisherKeys: [pub1.publicKey, pub2.publicKey] } } })
    await writeTree(join(dir.path, 'src'), { 'a.txt': 'two\n' })
    const r2Signed = nextStatement((s) => s.product === product && s.rev === 2, 'statement for r2 (the new key\'s release)')
    const r = await publish({ nc: publisher, src: join(dir.path, 'src'), product, key: pub2, trust, skipFeed: true })
    expect(await r2Signed).toMatchObject({ rev: 2, release: r.manifestSha256, root: 3 })

    // The publisher refuses the retired key now that the root names another one.
    await expect(publish({ nc: publisher, src: join(dir.path, 'src'), product, key: pub1, trust, skipFeed: true })).rejects.toThrow(/is not a publish key of product .* in root version 3/)
    // The retired key signs r3 anyway (a stolen key) and appends it by hand: the notary keeps vouching for r2.
    const seen: SignedStatement[] = []
    const off = notary!.onSigned((s) => { seen.push(s) })
    const after = nextStatement((s) => s.product === product, 'statement after the forged r3')
    const h = headers()
    h.set(REV_HEADER, '3')
    const forged = signManifest({ format: 1, product, rev: 3, createdAt: new Date().toISOString(), pieceSize: 1024 * 1024, parent: r.manifestSha256!, entries: [] }, pub1)
    await jetstream(publisher).publish(releaseSubject(product), encodeRelease(forged), { headers: h })
    expect(await after).toMatchObject({ rev: 2, release: r.manifestSha256 })
    off()
    expect(seen.filter((s) => s.rev === 3)).toEqual([])
  }, 60_000)
})
