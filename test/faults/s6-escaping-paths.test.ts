// Fault suite S6 (issue 11; ARCHITECTURE §3: manifest paths are relative, never escape the tree
// nor touch .upswarm): releases signed by the right key whose entries try to write outside the
// working copy — `../`, absolute paths, backslashes, `.upswarm/…`, symlinks in the release or
// planted by the user that later entries would be written through — through `init` and `update`.
// Written outside: 0. Every file an attack aims at is named pwned-<token>; afterwards the
// test directory, the temporary directory and / are searched for it. Full: 10 of each; short: 1.
import { randomUUID } from 'node:crypto'
import { lstat, mkdir, readdir, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { init, status, update } from '../../actors/updater/index.ts'
import { generatePublisherKey, signBytes } from '../../infra/release/keys.ts'
import { canonicalManifestBytes, encodeRelease, type Entry, type FileEntry } from '../../infra/release/manifest.ts'
import { tempDir } from '../helpers/cluster.ts'
import { DirectorySource, RecordingAlerts } from '../helpers/dir-source.ts'
import { publishLocal, releaseDir, writeTree } from '../helpers/local-publish.ts'
import { FaultFigures, missed, sized, zero } from './figures.ts'

const PER_ATTACK = sized(1, 10)

/** What r2 adds to a release of { a.txt, keep/k.txt } (and what the user did before, if anything). */
interface Attack {
  name: string
  entries: (c: { token: string; outside: string; file: FileEntry }) => Entry[]
  /** Entries of an r3 published after r2 (a two-step trick). */
  then?: (c: { token: string; outside: string; file: FileEntry }) => Entry[]
  /** Done by the user in the working copy at r1 before the update. */
  user?: (wc: string, outside: string) => Promise<void>
}

const file = (f: FileEntry, path: string): Entry => ({ ...f, path })
const attacks: Attack[] = [
  { name: '../ file', entries: ({ token, file: f }) => [file(f, `../pwned-${token}`)] },
  { name: '../../ file', entries: ({ token, file: f }) => [file(f, `../../pwned-${token}`)] },
  { name: 'a/../../ file', entries: ({ token, file: f }) => [file(f, `a/../../pwned-${token}`)] },
  { name: '../ directory', entries: ({ token }) => [{ path: `../pwned-${token}`, kind: 'dir', mode: 0o755 }] },
  { name: '../ symlink', entries: ({ token }) => [{ path: `../pwned-${token}`, kind: 'symlink', target: '/etc/passwd' }] },
  { name: 'absolute path', entries: ({ token, outside, file: f }) => [file(f, `${outside}/pwned-${token}`)] },
  { name: 'backslashes', entries: ({ token, file: f }) => [file(f, `a\\..\\..\\pwned-${token}`)] },
  { name: '.upswarm/ file', entries: ({ token, file: f }) => [file(f, `.upswarm/pwned-${token}`)] },
  { name: '.upswarm/state.json overwritten', entries: ({ file: f }) => [file(f, '.upswarm/state.json')] },
  { name: 'symlink to outside, file through it', entries: ({ token, outside, file: f }) => [{ path: 'lnk', kind: 'symlink', target: outside }, file(f, `lnk/pwned-${token}`)] },
  { name: 'relative symlink up, file through it', entries: ({ token, file: f }) => [{ path: 'lnk', kind: 'symlink', target: '../../outside' }, file(f, `lnk/pwned-${token}`)] },
  { name: 'symlink in r2, file through it in r3', entries: ({ outside }) => [{ path: 'lnk', kind: 'symlink', target: outside }],
    then: ({ token, outside, file: f }) => [{ path: 'lnk', kind: 'symlink', target: outside }, file(f, `lnk/pwned-${token}`)] },
  { name: 'symlink planted by the user over a release directory', entries: ({ token, file: f }) => [file(f, `keep/pwned-${token}`)],
    user: async (wc, outside) => {
      await rm(join(wc, 'keep'), { recursive: true })
      await symlink(outside, join(wc, 'keep'))
    } },
]

/** Every path under `root` (not following symlinks) whose name starts with `pwned-<token>`. */
async function findPwned(root: string, token: string, depth = 8): Promise<string[]> {
  const out: string[] = []
  const entries = await readdir(root).catch(() => [] as string[])
  for (const name of entries) {
    const abs = join(root, name)
    if (name.startsWith(`pwned-${token}`)) out.push(abs)
    if (depth > 0 && (await lstat(abs).catch(() => undefined))?.isDirectory()) out.push(...(await findPwned(abs, token, depth - 1)))
  }
  return out
}

describe('faults S6 — paths escaping the working copy', () => {
  let tmp: { path: string; cleanup: () => Promise<void> }
  beforeAll(async () => { tmp = await tempDir('upswarm-faults-s6-') })
  afterAll(async () => tmp?.cleanup())

  it('faults S6 — nothing is written outside the working copy', { timeout: sized(60_000, 600_000) }, async () => {
    const figures = new FaultFigures('faults-s6-escaping-paths', 'S6: signed manifests with paths escaping the working copy')
    const key = generatePublisherKey()
    // The search itself finds what it looks for (through a directory and below the top level).
    await mkdir(join(tmp.path, 'control', 'deep'), { recursive: true })
    await writeFile(join(tmp.path, 'control', 'deep', 'pwned-control'), '')
    expect(await findPwned(tmp.path, 'control')).toHaveLength(1)
    const rows = []
    let outsideTotal = 0
    for (const attack of attacks) {
      let written = 0
      const outcomes = new Map<string, number>()
      for (let i = 0; i < PER_ATTACK; i++) {
        for (const via of ['update', 'init'] as const) {
          if (via === 'init' && (attack.then || attack.user)) continue
          figures.runs++
          const token = randomUUID().slice(0, 8)
          const base = join(tmp.path, `run-${figures.runs}`)
          // base/outside is where symlinks point; base/wcs/wc is the copy, so ../ and ../../ stay in base.
          const outside = join(base, 'outside')
          const wc = join(base, 'wcs', 'wc')
          await mkdir(outside, { recursive: true })
          await mkdir(join(base, 'wcs'))
          const repo = join(base, 'repo')
          const product = randomUUID()
          const src = join(base, 'src')
          await writeTree(src, { 'a.txt': 'payload\n', 'keep/k.txt': 'k\n' })
          const source = new DirectorySource(repo)
          // The next revision, with the attack's entries added and signed by the pinned key as a
          // rogue publisher would: signManifest itself refuses unsafe paths, so sign the bytes.
          const publish = async (extra?: Attack['entries']): Promise<void> => {
            const { rev, release } = await publishLocal(repo, { key, product, src })
            if (!extra) return
            const m = release.manifest
            m.entries.push(...extra({ token, outside, file: m.entries.find((e): e is FileEntry => e.path === 'a.txt')! }))
            const signed = { manifest: m, publicKey: key.publicKey, signature: signBytes(key, canonicalManifestBytes(m)) }
            await writeFile(join(releaseDir(repo, product), `${rev}.json`), encodeRelease(signed))
          }
          let outcome: string
          try {
            await publish()
            if (via === 'update') {
              await init(wc, { product, publicKey: key.publicKey, rev: 1, source })
              await attack.user?.(wc, outside)
            }
            await publish(attack.entries)
            if (attack.then) await publish(attack.then)
            const res = via === 'init'
              ? await init(wc, { product, publicKey: key.publicKey, source, alerts: new RecordingAlerts() })
              : await update(wc, { source, alerts: new RecordingAlerts() })
            outcome = `${via} resolved${'blocked' in res && Array.isArray(res.blocked) && res.blocked.length ? ` (${res.blocked.length} blocked)` : ''}`
            await status(wc)
          } catch (err) {
            outcome = `${via}: ${(err as { code?: string }).code ?? `not an UpswarmError: ${String((err as Error).message).split('\n')[0]!.slice(0, 60)}`}`
          }
          outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1)
          const found = [
            ...(await findPwned(base, token)).filter((p) => relative(wc, p).startsWith('..') || relative(wc, p).startsWith('.upswarm')),
            ...(await findPwned(tmpdir(), token, 0)),
            ...(await findPwned('/', token, 0)),
          ]
          if (found.length) {
            written += found.length
            figures.fail(`${attack.name} via ${via}: wrote ${found.join(', ')}`)
          }
        }
      }
      outsideTotal += written
      rows.push({ attack: attack.name, runs: outcomes.size ? [...outcomes.values()].reduce((a, b) => a + b) : 0, 'written outside': written, outcomes: [...outcomes].map(([k, n]) => `${k} ×${n}`).join(', ') })
    }
    const goals = await figures.finish({
      parameters: { attacks: attacks.length, perAttack: PER_ATTACK },
      rows,
      goals: [zero('files written outside the working copy (or into .upswarm)', outsideTotal, `in ${figures.runs} runs`)],
      notes: ['each release is signed by the pinned key; "init" installs the crafted revision into an empty directory, "update" goes from a clean r1 to it'],
    })
    expect(missed(goals)).toEqual([])
  })
})
