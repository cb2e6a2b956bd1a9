// A ReleaseSource serving the folder written by local-publish.ts, with switches that let
// updater tests play a server that is down, lies about the newest revision, or sends bad
// bytes. And an AlertSink that records what it is given.
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { UpswarmError } from '../../infra/errors.ts'
import { manifestSha256, type FileEntry, type SignedRelease } from '../../infra/release/manifest.ts'
import type { BlobStore } from '../../infra/store/blob-store.ts'
import type { AlertSink, ReleaseSource, UpdaterAlert } from '../../infra/release/source.ts'
import { releaseDir, repoBlobs } from './local-publish.ts'

export class DirectorySource implements ReleaseSource {
  readonly repo: string
  /** False: every call fails as if no server could be reached. */
  online = true
  /** Advertise only revisions up to this one (a stale or malicious server). */
  advertiseUpTo: number | undefined
  /** Serve these bytes instead of the real release of a revision. */
  readonly releaseOverride = new Map<number, Uint8Array>()
  /** sha256 → how many more times to send wrong bytes for that blob. */
  readonly corrupt = new Map<string, number>()
  readonly calls = { revisions: 0, release: 0, fetchBlob: 0 }
  /** Root of trust documents this source serves (issue 10 item 7), and its newest fresh statement. */
  rootDocs: string[] = []
  freshDoc: string | undefined

  constructor(repo: string) {
    this.repo = repo
  }

  private up(what: string): void {
    if (!this.online) throw new UpswarmError('UPSWARM_E_NO_SERVER', `directory source ${this.repo} is offline (${what})`)
  }

  async revisions(product: string): Promise<{ rev: number; manifestSha256: string }[]> {
    this.calls.revisions++
    this.up('revisions')
    const names = await readdir(releaseDir(this.repo, product)).catch(() => [] as string[])
    const out: { rev: number; manifestSha256: string }[] = []
    for (const rev of names.map((n) => Number.parseInt(n, 10)).filter((n) => n > 0).sort((a, b) => a - b)) {
      if (this.advertiseUpTo !== undefined && rev > this.advertiseUpTo) continue
      // Not validated here: a server serves whatever it holds, and the updater is the one to refuse it.
      const release = JSON.parse(await readFile(join(releaseDir(this.repo, product), `${rev}.json`), 'utf8')) as SignedRelease
      out.push({ rev, manifestSha256: manifestSha256(release.manifest) })
    }
    return out
  }

  async roots(from: number): Promise<string[]> {
    this.up('roots')
    return this.rootDocs.filter((d) => (JSON.parse(d) as { signed: { version: number } }).signed.version >= from)
  }

  async fresh(_product: string): Promise<string | undefined> {
    this.up('fresh')
    return this.freshDoc
  }

  async release(product: string, rev: number): Promise<Uint8Array> {
    this.calls.release++
    this.up('release')
    const override = this.releaseOverride.get(rev)
    if (override) return override
    return readFile(join(releaseDir(this.repo, product), `${rev}.json`)).catch(() => {
      throw new UpswarmError('UPSWARM_E_UNKNOWN_REVISION', `revision ${rev} of ${product} is not in ${this.repo}`)
    })
  }

  async fetchBlob(entry: FileEntry, into: BlobStore, _opts: { signal?: AbortSignal; threads: number }): Promise<{ bytesFromServers: number; bytesFromPeers: number }> {
    this.calls.fetchBlob++
    this.up(`blob ${entry.sha256}`)
    const bad = this.corrupt.get(entry.sha256) ?? 0
    if (bad > 0) {
      this.corrupt.set(entry.sha256, bad - 1)
      await into.put(entry.sha256, Readable.from([Buffer.alloc(entry.size, 0x58)]), `${this.repo} (corrupted)`, entry.size)
    } else {
      // Opened lazily, inside put's pipeline: an eager stream could emit 'error' unheard.
      const blobs = repoBlobs(this.repo)
      await into.put(entry.sha256, (async function* () { yield* blobs.createReadStream(entry.sha256) as AsyncIterable<Buffer> })(), this.repo, entry.size)
    }
    return { bytesFromServers: entry.size, bytesFromPeers: 0 }
  }
}

export class RecordingAlerts implements AlertSink {
  readonly alerts: UpdaterAlert[] = []

  async publish(alert: UpdaterAlert): Promise<void> {
    this.alerts.push(alert)
  }
}
