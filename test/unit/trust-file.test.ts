import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { mkdtemp, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomUUID } from 'node:crypto'
import { LOCK_STALE_MS } from '../../infra/store/lock-file.ts'
import { TrustStore, isPrivate, loadTrust, pinProduct, trustedKeys } from '../../infra/release/trust.ts'
import { encodeEnvelope } from '../../infra/formats/envelope.ts'
import { draftOf, rootBody, signRoot, type RootDraft } from '../../infra/formats/root.ts'
import { generatePublisherKey } from '../../infra/release/keys.ts'

const KEY_A = 'a'.repeat(64)
const KEY_B = 'b'.repeat(64)

describe('trust file', () => {
  let dir: string
  let file: string
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'upswarm-trust-'))
    file = join(dir, 'trust.json')
  })
  afterEach(() => rm(dir, { recursive: true, force: true }))

  it('trust — a malformed file is refused with the file and the field named', async () => {
    await writeFile(file, JSON.stringify({ format: 1, products: { [randomUUID()]: { publisherKeys: ['XYZ'] } } }))
    await expect(loadTrust(file)).rejects.toMatchObject({ code: 'UPSWARM_E_CONFIG', message: expect.stringMatching(new RegExp(`trust file ${file} is malformed at products\\..*\\.publisherKeys\\.0: must be an Ed25519`)) })
    await writeFile(file, JSON.stringify({ format: 4, products: {} }))
    await expect(loadTrust(file)).rejects.toThrow(/malformed at format: must be 1, 2 or 3/)
    await writeFile(file, JSON.stringify({ format: 3, products: {} }))
    await expect(loadTrust(file)).rejects.toThrow(/malformed at root/)
    await writeFile(file, JSON.stringify({ format: 1, products: {}, private: ['x'] }))
    await expect(loadTrust(file)).rejects.toThrow(/malformed at \(root\)/)
    await writeFile(file, '{nope')
    await expect(loadTrust(file)).rejects.toThrow(`trust file ${file} is not valid JSON`)
    await expect(loadTrust(join(dir, 'none.json'))).rejects.toThrow(/does not exist/)
  })

  it('trust — private products: format 2 only, written as 2 only when a product is private, refused in a format-1 file', async () => {
    const pub = randomUUID()
    const priv = randomUUID()
    await pinProduct(file, pub, KEY_A)
    expect(JSON.parse(await readFile(file, 'utf8')).format).toBe(1) // still readable by a format-1 reader
    expect(await pinProduct(file, priv, KEY_B, { private: true })).toEqual({ pinned: true })
    const written = JSON.parse(await readFile(file, 'utf8'))
    expect(written).toEqual({ format: 2, products: { [pub]: { publisherKeys: [KEY_A] }, [priv]: { publisherKeys: [KEY_B], private: true } } })
    const trust = await loadTrust(file)
    expect([isPrivate(trust, pub), isPrivate(trust, priv)]).toEqual([false, true])
    // Marking an already pinned product private; never public again by pinning.
    expect(await pinProduct(file, pub, KEY_A, { private: true })).toEqual({ pinned: false })
    expect(isPrivate(await loadTrust(file), pub)).toBe(true)
    await pinProduct(file, pub, KEY_A)
    expect(isPrivate(await loadTrust(file), pub)).toBe(true)
    // `private` in a format-1 file is what a format-1 reader refuses too: never silently public.
    await writeFile(file, JSON.stringify({ format: 1, products: { [priv]: { publisherKeys: [KEY_B], private: true } } }))
    await expect(loadTrust(file)).rejects.toThrow(new RegExp(`malformed at products\\.${priv}: Unrecognized key.*private`))
    await writeFile(file, JSON.stringify({ format: 2, products: { [priv]: { publisherKeys: [KEY_B], private: false } } }))
    await expect(loadTrust(file)).rejects.toThrow(/malformed at products\..*\.private: must be true/)
  })

  it('trust — pinProduct creates the file, pins once, and refuses another key naming the pinned one', async () => {
    const product = randomUUID()
    expect(await pinProduct(file, product, KEY_A)).toEqual({ pinned: true })
    expect(await pinProduct(file, product, KEY_A)).toEqual({ pinned: false })
    const before = await readFile(file, 'utf8')
    await expect(pinProduct(file, product, KEY_B)).rejects.toMatchObject({
      code: 'UPSWARM_E_CONFIG', message: expect.stringContaining(`product ${product} is pinned to key ${KEY_A}`),
    })
    expect(await readFile(file, 'utf8')).toBe(before)
    const other = randomUUID()
    await pinProduct(file, other, KEY_B)
    const trust = await loadTrust(file)
    expect(trustedKeys(trust, product)).toEqual([KEY_A])
    expect(trustedKeys(trust, other)).toEqual([KEY_B])
    expect(trustedKeys(trust, randomUUID())).toBeUndefined()
  })

  it('trust — concurrent pins of different products all land (the file is locked while it changes)', async () => {
    const products = Array.from({ length: 24 }, () => randomUUID())
    const results = await Promise.all(products.map((p, i) => pinProduct(file, p, i % 2 ? KEY_A : KEY_B)))
    expect(results.every((r) => r.pinned)).toBe(true)
    const trust = await loadTrust(file)
    expect(Object.keys(trust.products).sort()).toEqual([...products].sort())
    products.forEach((p, i) => expect(trustedKeys(trust, p)).toEqual([i % 2 ? KEY_A : KEY_B]))
    await expect(stat(`${file}.lock`)).rejects.toMatchObject({ code: 'ENOENT' })
  })

  it('trust — a pin waits for the lock another process holds, and takes over one left by a killed process', async () => {
    const product = randomUUID()
    await writeFile(`${file}.lock`, '1')
    let done = false
    const pinning = pinProduct(file, product, KEY_A).then((r) => { done = true; return r })
    // The pin cannot have landed while the lock is held; it lands once the holder lets go.
    await new Promise((r) => setTimeout(r, 50))
    expect(done).toBe(false)
    await rm(`${file}.lock`)
    expect(await pinning).toEqual({ pinned: true })
    const stale = new Date(Date.now() - LOCK_STALE_MS - 1000)
    await writeFile(`${file}.lock`, '1')
    await utimes(`${file}.lock`, stale, stale)
    const other = randomUUID()
    expect(await pinProduct(file, other, KEY_B)).toEqual({ pinned: true })
    expect(Object.keys((await loadTrust(file)).products).sort()).toEqual([product, other].sort())
  })

  it('trust — a TrustStore sees a pin made after it started, and refuses lookups while the file is broken', async () => {
    const store = await new TrustStore(file).ready()
    const product = randomUUID()
    expect(await store.refusal(product, KEY_A)).toMatch(/is not pinned in trust file .* \(the file does not exist\)/)
    await pinProduct(file, product, KEY_A)
    expect(await store.keysFor(product)).toEqual([KEY_A])
    expect(await store.refusal(product, KEY_A)).toBeNull()
    expect(await store.refusal(product, KEY_B)).toBe(`product ${product} is pinned to key ${KEY_A} in trust file ${file}, not to ${KEY_B}`)
    await writeFile(file, '{"format":1,"products":')
    await expect(store.keysFor(product)).rejects.toThrow(/not valid JSON/)
  })

  it('trust — format 3 pins a root: keys come from its chain, which the role extends from the stream when a key is refused', async () => {
    const rootKeys = [generatePublisherKey()]
    const k1 = generatePublisherKey()
    const k2 = generatePublisherKey()
    const product = randomUUID()
    const d: RootDraft = {
      version: 1, expiresMs: Date.now() + 86_400_000, rootKeys: rootKeys.map((k) => k.publicKey), rootThreshold: 1,
      freshKeys: [generatePublisherKey().publicKey], products: { [product]: { publish: [k1.publicKey] } },
    }
    const v1 = signRoot(rootBody(d), rootKeys)
    await writeFile(file, JSON.stringify({ format: 3, root: v1.env, products: { [product]: { private: true } } }))
    const store = await new TrustStore(file).ready()
    expect(await store.keysFor(product)).toEqual([k1.publicKey])
    expect(await store.isPrivate(product)).toBe(true)
    await expect(pinProduct(file, randomUUID(), KEY_A)).rejects.toThrow(/pins a root of trust .*`upswarm root edit`/)

    const d2 = draftOf(v1.root)
    d2.version = 2
    d2.products[product] = { publish: [k2.publicKey], retired: [{ key: k1.publicKey, lastRev: 3 }] }
    const v2 = encodeEnvelope(signRoot(rootBody(d2), rootKeys).env).toString()
    let looks = 0
    store.followRoots(async (from) => {
      looks++
      return from <= 2 ? [v2] : []
    })
    // k2's release is refused by root 1 alone; the store looks for newer roots, finds 2, trusts it.
    expect(await store.refusal(product, k2.publicKey, 4)).toBeNull()
    expect(store.rootVersion).toBe(2)
    expect(await store.refusal(product, k1.publicKey, 3)).toBeNull()
    expect(await store.refusal(product, k1.publicKey, 4)).toMatch(/retired after r3 in root version 2/)
    expect(looks).toBe(1)
    expect(await store.isPrivate(product)).toBe(true)
    // A forged "root 2" from the stream is not taken.
    const other = new TrustStore(file)
    other.followRoots(async () => [encodeEnvelope(signRoot(rootBody(d2), [generatePublisherKey()]).env).toString()])
    expect(await other.refusal(product, k2.publicKey, 4)).toMatch(/may not sign releases/)
    expect(other.rootVersion).toBe(1)
  })
})
