// Fault suite S5 (issue 11; R-VERIFY, ARCHITECTURE §3 signed manifests, issue 10 item 7 roots of
// trust): a directory source serves manifests with flipped signatures, fields changed after
// signing, other keys, other products, replays of older revisions, an older "newest" revision,
// garbage, and forged roots of trust. Every update must refuse them: accepted 0, and the working
// copy stays at its revision (tree and state). Full: 40 of each attack; short: one of each.
import { execFile } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { init, status, update } from '../../actors/updater/index.ts'
import { encodeEnvelope, signEnvelope } from '../../infra/formats/envelope.ts'
import { rootBody, signRoot, type RootDraft } from '../../infra/formats/root.ts'
import { generatePublisherKey, type PublisherKey } from '../../infra/release/keys.ts'
import { encodeRelease, signManifest, type SignedRelease } from '../../infra/release/manifest.ts'
import { tempDir } from '../helpers/cluster.ts'
import { DirectorySource, RecordingAlerts } from '../helpers/dir-source.ts'
import { publishLocal, snapshotTree, writeTree } from '../helpers/local-publish.ts'
import { FaultFigures, missed, random, sized, zero } from './figures.ts'

const run = promisify(execFile)
const PER_ATTACK = sized(1, 40)
const DAY = 86_400_000

/** What one attack serves: the bytes of "r3", the root documents, or an older newest revision. */
interface Served { release?: Uint8Array; rootDocs?: string[]; advertiseUpTo?: number }
type Attack = { name: string; pinned: 'key' | 'root'; make: (rnd: () => number) => Served }

describe('faults S5 — bad manifests and forged roots', () => {
  let tmp: { path: string; cleanup: () => Promise<void> }
  const key = generatePublisherKey()
  const other = generatePublisherKey()
  const rootKeys = [generatePublisherKey(), generatePublisherKey()]
  const thief = [generatePublisherKey(), generatePublisherKey()]
  const product = randomUUID()
  let repo: string
  const releases: Record<number, Buffer> = {}
  let otherProductR3: Buffer
  let v1Root: string
  const templates: Record<'key' | 'root', string> = { key: '', root: '' }
  let atR2: Record<string, string>

  beforeAll(async () => {
    tmp = await tempDir('upswarm-faults-s5-')
    repo = join(tmp.path, 'repo')
    const publish = async (p: string, rev: number): Promise<void> => {
      const src = join(tmp.path, `src-${p}-${rev}`)
      await writeTree(src, { 'a.txt': `${p} ${rev}\n`, 'lib/b.txt': `b${rev}\n` })
      await publishLocal(repo, { key, product: p, src })
    }
    // The copies are made at r2 before r3 exists (init verifies the newest manifest it sees).
    for (const rev of [1, 2]) await publish(product, rev)
    const draft: RootDraft = {
      version: 1, expiresMs: Date.now() + 365 * DAY, rootKeys: rootKeys.map((k) => k.publicKey), rootThreshold: 2,
      freshKeys: [rootKeys[0]!.publicKey], products: { [product]: { publish: [key.publicKey] } },
    }
    v1Root = encodeEnvelope(signRoot(rootBody(draft), rootKeys).env).toString('utf8')
    templates.key = join(tmp.path, 'template-key')
    templates.root = join(tmp.path, 'template-root')
    await init(templates.key, { product, publicKey: key.publicKey, rev: 2, source: new DirectorySource(repo) })
    const rooted = new DirectorySource(repo)
    rooted.rootDocs = [v1Root]
    await init(templates.root, { product, root: { text: v1Root, where: 'root.json' }, rev: 2, source: rooted })
    // r3 is what the attacks replace; r1 is the older revision.
    await publish(product, 3)
    const second = randomUUID()
    for (const rev of [1, 2, 3]) await publish(second, rev)
    for (const rev of [1, 2, 3]) releases[rev] = await readFile(join(repo, 'releases', product, `${rev}.json`))
    otherProductR3 = await readFile(join(repo, 'releases', second, '3.json'))
    atR2 = await snapshotTree(templates.key)
  })
  afterAll(async () => tmp?.cleanup())

  const r3 = (): SignedRelease => JSON.parse(releases[3]!.toString('utf8')) as SignedRelease
  const pick = <T>(rnd: () => number, xs: T[]): T => xs[Math.floor(rnd() * xs.length)]!
  /** r3 with one field of its manifest changed after signing. */
  const changedAfterSigning = (rnd: () => number): Served => {
    const rel = r3()
    const m = rel.manifest
    const e = pick(rnd, m.entries)
    const change = pick(rnd, ['rev', 'product', 'label', 'createdAt', 'parent', 'sha256', 'path', 'mode', 'drop', 'add'] as const)
    if (change === 'rev') m.rev = 4
    else if (change === 'product') m.product = randomUUID()
    else if (change === 'label') m.label = 'evil'
    else if (change === 'createdAt') m.createdAt = new Date(0).toISOString()
    else if (change === 'parent') m.parent = 'ab'.repeat(32)
    else if (change === 'sha256' && e.kind === 'file') e.sha256 = 'cd'.repeat(32)
    else if (change === 'path') e.path = `${e.path}.evil`
    else if (change === 'mode' && e.kind !== 'symlink') e.mode = 0o4777
    else if (change === 'drop') m.entries.splice(m.entries.indexOf(e), 1)
    else m.entries.push({ path: 'evil.txt', kind: 'dir', mode: 0o755 })
    return { release: encodeRelease(rel) }
  }
  /** A root version 2 that hands the product to a thief's key, signed by `signers`, maybe edited after signing. */
  const forgedRoot = (signers: PublisherKey[], editAfter = false): Served => {
    const d: RootDraft = {
      version: 2, expiresMs: Date.now() + 365 * DAY, rootKeys: (editAfter ? rootKeys : signers).map((k) => k.publicKey), rootThreshold: Math.min(2, signers.length),
      freshKeys: [thief[0]!.publicKey], products: { [product]: { publish: [thief[0]!.publicKey], retired: [{ key: key.publicKey, lastRev: 2 }] } },
    }
    const env = signEnvelope(rootBody(d), signers)
    if (editAfter) (env.signed as { expires: string }).expires = new Date(Date.now() + 3650 * DAY).toISOString()
    return { rootDocs: [v1Root, encodeEnvelope(env).toString('utf8')], release: encodeRelease(signManifest(r3().manifest, thief[0]!)) }
  }

  const attacks: Attack[] = [
    { name: 'signature with a flipped bit', pinned: 'key', make: (rnd) => {
      const rel = r3()
      const sig = Buffer.from(rel.signature, 'hex')
      const at = Math.floor(rnd() * sig.length)
      sig[at] = sig[at]! ^ (1 << Math.floor(rnd() * 8))
      return { release: encodeRelease({ ...rel, signature: sig.toString('hex') }) }
    } },
    { name: 'manifest changed after signing', pinned: 'key', make: changedAfterSigning },
    { name: 'signed by another key', pinned: 'key', make: () => ({ release: encodeRelease(signManifest(r3().manifest, other)) }) },
    { name: 'signed by another key, naming the pinned key', pinned: 'key', make: () => ({ release: encodeRelease({ ...signManifest(r3().manifest, other), publicKey: key.publicKey }) }) },
    { name: 'release of another product by the same key', pinned: 'key', make: () => ({ release: otherProductR3 }) },
    { name: 'replay of r1 or r2 as r3', pinned: 'key', make: (rnd) => ({ release: releases[pick(rnd, [1, 2])]! }) },
    { name: 'older newest revision advertised', pinned: 'key', make: () => ({ advertiseUpTo: 1 }) },
    { name: 'garbage or truncated bytes', pinned: 'key', make: (rnd) => {
      const whole = releases[3]!
      return { release: rnd() < 0.5 ? whole.subarray(0, Math.floor(rnd() * whole.length)) : Buffer.from(Array.from({ length: 1 + Math.floor(rnd() * 300) }, () => Math.floor(rnd() * 256))) }
    } },
    { name: 'root handing the product to thieves, signed by their keys', pinned: 'root', make: () => forgedRoot(thief) },
    { name: 'root signed by one of two root keys', pinned: 'root', make: () => forgedRoot([rootKeys[0]!, thief[0]!]) },
    { name: 'root changed after signing', pinned: 'root', make: () => forgedRoot(rootKeys, true) },
    { name: 'release by a thief, root unchanged', pinned: 'root', make: () => ({ rootDocs: [v1Root], release: encodeRelease(signManifest(r3().manifest, thief[0]!)) }) },
  ]

  it('faults S5 — no bad manifest or forged root is accepted', { timeout: sized(60_000, 600_000) }, async () => {
    const figures = new FaultFigures('faults-s5-bad-manifests', 'S5: manifests with bad signatures, other keys, older revisions, replays and forged roots')
    const rnd = random()
    // Control: the honest r3 goes through on both copies, so the refusals below are the attacks'.
    for (const pinned of ['key', 'root'] as const) {
      const dir = join(tmp.path, `control-${pinned}`)
      await run('cp', ['-a', templates[pinned], dir])
      const source = new DirectorySource(repo)
      source.rootDocs = pinned === 'root' ? [v1Root] : []
      expect((await update(dir, { source, alerts: new RecordingAlerts() })).to).toBe(3)
    }
    const rows = []
    let accepted = 0
    for (const attack of attacks) {
      const refusedWith = new Map<string, number>()
      let taken = 0
      for (let i = 0; i < PER_ATTACK; i++) {
        figures.runs++
        const dir = join(tmp.path, `wc-${figures.runs}`)
        await run('cp', ['-a', templates[attack.pinned], dir])
        const source = new DirectorySource(repo)
        const served = attack.make(rnd)
        if (served.release) source.releaseOverride.set(3, served.release)
        if (served.advertiseUpTo) source.advertiseUpTo = served.advertiseUpTo
        source.rootDocs = served.rootDocs ?? (attack.pinned === 'root' ? [v1Root] : [])
        const outcome = await update(dir, { source, alerts: new RecordingAlerts() }).then(
          (r) => `resolved to r${r.to}`,
          (err: unknown) => (err as { code?: string }).code ?? `non-upswarm error: ${(err as Error).message}`,
        )
        const s = await status(dir)
        const wrong = [
          ...(s.rev !== 2 ? [`state at r${s.rev}`] : []),
          ...(attack.pinned === 'root' && s.rootVersion !== 1 ? [`root version ${s.rootVersion} adopted`] : []),
          ...(JSON.stringify(await snapshotTree(dir)) !== JSON.stringify(atR2) ? ['the tree changed'] : []),
          ...(outcome.startsWith('non-upswarm') ? [outcome] : []),
        ]
        if (wrong.length) {
          taken++
          figures.fail(`${attack.name}: ${outcome}; ${wrong.join(', ')}`)
        }
        refusedWith.set(outcome, (refusedWith.get(outcome) ?? 0) + 1)
      }
      accepted += taken
      rows.push({ attack: attack.name, pinned: attack.pinned, runs: PER_ATTACK, accepted: taken, outcomes: [...refusedWith].map(([k, n]) => `${k} ×${n}`).join(', ') })
    }
    const goals = await figures.finish({
      parameters: { attacks: attacks.length, perAttack: PER_ATTACK },
      rows,
      goals: [zero('bad manifests or roots accepted', accepted, `of ${figures.runs} attempts`)],
      notes: ['every attempt starts from a copy at r2 (pinned to the publisher key, or to a root of trust v1 with 2-of-2 root keys); "r3" is what the source serves; "resolved to r2" is an update that stayed (an older newest revision is ignored)'],
    })
    expect(missed(goals)).toEqual([])
  })
})
