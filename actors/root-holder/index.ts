// The root holder's side of the root of trust (issue 10 item 7; docs/formats.md §1.2, §3.2):
// edits a root into the next version (products added, publish keys rotated and retired with
// their last revision, minRev after a compromise), signs it with the offline root keys, and
// summarises a root for people. Pure: files and NATS are the caller's. Root version 1 and the
// root files of a deployment are infra/formats (root.ts, deployment-root.ts): `upswarm up` makes them too.
import { UpswarmError } from '../../infra/errors.ts'
import { HEX64 } from '../../infra/formats/envelope.ts'
import { DAY_MS, NEW_PRODUCT_FORMATS, checkHexKey, draftOf, rootBody, signRoot, verifyNextRoot, type Root, type SignedRoot } from '../../infra/formats/root.ts'
import { UUID_RE } from '../../infra/release/manifest.ts'
import type { PublisherKey } from '../../infra/release/keys.ts'

export interface RootEdit {
  addProducts?: Array<{ product: string; publishKey: string }>
  /** Rotation (or revocation, with minRev): the current publish keys retire after `lastRev`. */
  rotate?: Array<{ product: string; publishKey: string; lastRev: number; lastRelease?: string }>
  minRev?: Array<{ product: string; rev: number }>
  /** docs/formats.md §2.2: the release formats a product's publisher writes (e.g. [1, 2], later [2]). */
  formats?: Array<{ product: string; formats: number[] }>
  /** Issue 16: the keys that may sign a product's rollout statements / only its halts (replacing any before; [] removes the role). */
  rolloutKeys?: Array<{ product: string; keys: string[] }>
  haltKeys?: Array<{ product: string; keys: string[] }>
  expiresDays?: number
  /** New root role (raw public keys) and threshold; the edit must then be signed by old and new keys. */
  rootKeys?: string[]
  threshold?: number
  freshKeys?: string[]
  freshLifetimeS?: number
  nowMs?: number
}

/** The next version of `base`, signed by `signers`; refused unless it chains from `base`. */
export function editRoot(base: Root, signers: PublisherKey[], e: RootEdit): SignedRoot {
  const d = draftOf(base)
  d.version = base.version + 1
  const now = e.nowMs ?? Date.now()
  if (e.expiresDays !== undefined) d.expiresMs = now + e.expiresDays * DAY_MS
  if (e.rootKeys) {
    for (const k of e.rootKeys) checkHexKey(k, 'root key')
    d.rootKeys = e.rootKeys
  }
  if (e.threshold !== undefined) d.rootThreshold = e.threshold
  if (e.freshKeys) {
    for (const k of e.freshKeys) checkHexKey(k, '--fresh-key')
    d.freshKeys = e.freshKeys
  }
  if (e.freshLifetimeS !== undefined) d.freshLifetimeS = e.freshLifetimeS
  for (const { product, publishKey } of e.addProducts ?? []) {
    checkProduct(product)
    checkHexKey(publishKey, '--publish-key')
    if (d.products[product]) throw new UpswarmError('UPSWARM_E_CONFIG', `product ${product} is already in root version ${base.version}; use --rotate ${product} to change its key`)
    d.products[product] = { publish: [publishKey], formats: [...NEW_PRODUCT_FORMATS] }
  }
  for (const r of e.rotate ?? []) {
    checkProduct(r.product)
    checkHexKey(r.publishKey, '--publish-key')
    if (r.lastRelease !== undefined && !HEX64.test(r.lastRelease)) throw new UpswarmError('UPSWARM_E_CONFIG', `--last-release must be a SHA-256 in hex (64 characters), got ${JSON.stringify(r.lastRelease)}`)
    const p = d.products[r.product]
    if (!p) throw new UpswarmError('UPSWARM_E_CONFIG', `product ${r.product} is not in root version ${base.version}; add it with --add-product`)
    if (p.publish.includes(r.publishKey)) throw new UpswarmError('UPSWARM_E_CONFIG', `${r.publishKey.slice(0, 16)}… already is the publish key of ${r.product}`)
    if ((p.retired ?? []).some((x) => x.key === r.publishKey)) throw new UpswarmError('UPSWARM_E_CONFIG', `${r.publishKey.slice(0, 16)}… was retired for ${r.product}; a retired key never signs again`)
    const retired = p.publish.map((key) => ({ key, lastRev: r.lastRev, ...(r.lastRelease ? { lastRelease: r.lastRelease } : {}) }))
    d.products[r.product] = { ...p, publish: [r.publishKey], retired: [...(p.retired ?? []), ...retired] }
  }
  for (const m of e.minRev ?? []) {
    checkProduct(m.product)
    const p = d.products[m.product]
    if (!p) throw new UpswarmError('UPSWARM_E_CONFIG', `--min-rev ${m.product}=${m.rev}: product ${m.product} is not in root version ${base.version}`)
    p.minRev = m.rev
  }
  for (const f of e.formats ?? []) {
    checkProduct(f.product)
    const p = d.products[f.product]
    if (!p) throw new UpswarmError('UPSWARM_E_CONFIG', `--formats ${f.product}=…: product ${f.product} is not in root version ${base.version}`)
    const known = f.formats.filter((n) => n === 1 || n === 2)
    if (known.length === 0 || known.length !== f.formats.length) {
      throw new UpswarmError('UPSWARM_E_CONFIG', `--formats ${f.product}=${f.formats.join(',')}: this upswarm writes formats 1 and 2; give 1, 2 or 1,2`)
    }
    p.formats = [...new Set(known)].sort()
  }
  for (const [flag, role, edits] of [['--rollout-key', 'rollout', e.rolloutKeys], ['--halt-key', 'halt', e.haltKeys]] as const) {
    for (const r of edits ?? []) {
      checkProduct(r.product)
      for (const k of r.keys) checkHexKey(k, flag)
      const p = d.products[r.product]
      if (!p) throw new UpswarmError('UPSWARM_E_CONFIG', `${flag} ${r.product}=…: product ${r.product} is not in root version ${base.version}`)
      if (r.keys.length > 0) p[role] = [...new Set(r.keys)]
      else delete p[role]
    }
  }
  if (d.rootThreshold < 1 || d.rootThreshold > new Set(d.rootKeys).size) {
    throw new UpswarmError('UPSWARM_E_CONFIG', `the root role needs a threshold between 1 and its ${new Set(d.rootKeys).size} key(s), got ${d.rootThreshold}`)
  }
  const signed = signRoot(rootBody(d), signers)
  verifyNextRoot(base, signed, 'the edited root')
  return signed
}

export interface RootSummary {
  version: number
  expires: string
  expired: boolean
  root: { threshold: number; keys: string[] }
  fresh: { threshold: number; keys: string[]; maxLifetime?: number }
  products: Record<string, { publish: string[]; rollout?: string[]; halt?: string[]; retired: Array<{ key: string; lastRev: number; lastRelease?: string }>; minRev?: number; formats?: number[] }>
}

/** Keys as raw public keys (what `keygen` prints and `--publish-key` takes). */
export function rootSummary(root: Root, nowMs = Date.now()): RootSummary {
  const raw = (id: string): string => root.keys[id]?.public ?? id
  const products: RootSummary['products'] = {}
  for (const [product, p] of Object.entries(root.products)) {
    products[product] = {
      publish: p.publish.keys.map(raw),
      ...(p.rollout ? { rollout: p.rollout.keys.map(raw) } : {}),
      ...(p.halt ? { halt: p.halt.keys.map(raw) } : {}),
      ...(p.formats ? { formats: p.formats } : {}),
      retired: (p.retired ?? []).map((r) => ({ key: raw(r.keyid), lastRev: r.lastRev, ...(r.lastRelease ? { lastRelease: r.lastRelease } : {}) })),
      ...(p.minRev !== undefined ? { minRev: p.minRev } : {}),
    }
  }
  return {
    version: root.version, expires: root.expires, expired: Date.parse(root.expires) <= nowMs,
    root: { threshold: root.roles.root.threshold, keys: root.roles.root.keys.map(raw) },
    fresh: { threshold: root.roles.fresh.threshold, keys: root.roles.fresh.keys.map(raw), ...(root.roles.fresh.maxLifetime ? { maxLifetime: root.roles.fresh.maxLifetime } : {}) },
    products,
  }
}

export function summaryLines(s: RootSummary): string {
  const lines = [
    `root version ${s.version}, expires ${s.expires}${s.expired ? ' (EXPIRED)' : ''}`,
    `root keys (${s.root.threshold} of ${s.root.keys.length}): ${s.root.keys.join(' ')}`,
    `fresh key: ${s.fresh.keys.join(' ')}${s.fresh.maxLifetime ? ` (statements live ≤ ${s.fresh.maxLifetime} s)` : ''}`,
  ]
  const products = Object.entries(s.products)
  if (products.length === 0) lines.push('products: none yet (root edit --add-product P --publish-key HEX)')
  for (const [product, p] of products) {
    lines.push(`product ${product}: publish ${p.publish.join(' ')}${p.minRev !== undefined ? `, minRev ${p.minRev}` : ''}${p.formats ? `, formats ${p.formats.join(',')}` : ''}`)
    if (p.rollout) lines.push(`  rollout ${p.rollout.join(' ')}`)
    if (p.halt) lines.push(`  halt ${p.halt.join(' ')}`)
    for (const r of p.retired) lines.push(`  retired ${r.key} after r${r.lastRev}${r.lastRelease ? ` (${r.lastRelease})` : ''}`)
  }
  return lines.join('\n')
}

function checkProduct(product: string): void {
  if (!UUID_RE.test(product)) throw new UpswarmError('UPSWARM_E_CONFIG', `product ids are lowercase UUIDs, got ${JSON.stringify(product)}`)
}

/**
 * The roles a product added to an `up` deployment gets from the deployment's key files (`root edit
 * --dir D --add-product` and addProductToDeployment): the notary's halt key halts its failing
 * releases (issue 16 item 2), and the console's rollout key rolls it out beside the publish key (a
 * rollout role replaces the publish key's right to roll out, docs/formats.md §1.2: both are named).
 */
export async function deploymentRoles(product: string, publishKey: string, files: { haltKey?: string | undefined; rolloutKey?: string | undefined }): Promise<Pick<RootEdit, 'haltKeys' | 'rolloutKeys'>> {
  const { readKeyFile } = await import('../../infra/release/keys.ts')
  return {
    ...(files.haltKey ? { haltKeys: [{ product, keys: [(await readKeyFile(files.haltKey)).publicKey] }] } : {}),
    ...(files.rolloutKey ? { rolloutKeys: [{ product, keys: [(await readKeyFile(files.rolloutKey)).publicKey, publishKey] }] } : {}),
  }
}

/**
 * Adds `product` with its publish key to a deployment's root (D/root.json, signed with D's root
 * key) and appends the new version to the root stream, as `upswarm root edit --dir D
 * --add-product` does (with `formats`, as `--formats` does): the demo and the benchmarks do it
 * before a product's first release, so clients pin the root (and, with formats [1, 2], read format
 * 2). A product already in the root is left as it is.
 */
export async function addProductToDeployment(
  nc: import('@nats-io/transport-node').NatsConnection, ep: { root: string; rootKey: string; haltKey?: string | undefined; rolloutKey?: string | undefined }, product: string, publishKey: string, formats?: number[],
): Promise<void> {
  const [{ readRootFile, writeRootFile }, { rootText }, { appendRoot }, { readKeyFile }] = await Promise.all([
    import('../../infra/formats/deployment-root.ts'), import('../../infra/formats/root.ts'),
    import('../../infra/formats/meta-stream.ts'), import('../../infra/release/keys.ts')])
  const { signed } = await readRootFile(ep.root)
  if (signed.root.products[product]) return
  const next = editRoot(signed.root, [await readKeyFile(ep.rootKey)], {
    addProducts: [{ product, publishKey }], ...(formats ? { formats: [{ product, formats }] } : {}),
    ...(await deploymentRoles(product, publishKey, { haltKey: ep.haltKey, rolloutKey: ep.rolloutKey })),
  })
  await appendRoot(nc, rootText(next), ep.root)
  await writeRootFile(ep.root, next)
}
