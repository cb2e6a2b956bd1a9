// The working copy's file monitor (issue 13 item 2): what changed in the tree since a token, so
// that `status` lstats only that instead of every path (git's fsmonitor, Watchman's "since"
// queries). One inotify watch per directory of the tree (node's fs.watch: libuv keeps one
// inotify descriptor per process, so every event of the tree arrives in one ordered queue),
// the metadata folder left out. Each event marks the path it names, and the directory too when
// a name appeared or went; a directory that appears is watched and everything in it marked.
//
// Exactness:
// - A query first writes a cookie file into a watched folder of its own and waits for its
//   event: everything that happened on disk before the query has been seen by then.
// - A token is (this monitor's id, an event number). Changes after a token are those marked with
//   a higher number; a token of another monitor, or from before the last (re)walk, gets `all`.
// - The kernel queue holds `max_queued_events` (16 384 by default) and libuv drops the kernel's
//   overflow notice. An overflow means the queue was full, and libuv reads the queue to its end
//   in one go: so one drain that delivers half that many events or more is taken as a possible
//   overflow, and the monitor walks the tree again (tokens before it get `all`). Over-counting
//   only costs one full status.
import { randomBytes } from 'node:crypto'
import { watch, type FSWatcher, lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { UpswarmError } from '../../errors.ts'

/** A point in a monitor's stream of changes. */
export interface MonitorToken {
  id: string
  seq: number
}

/** A query's answer: `token` to record, and what changed since the token asked about. */
export type ChangesAnswer =
  | { token: MonitorToken; all: false; paths: string[] }
  /** Everything may have changed: no token, another monitor's, one from before a re-walk, too many changes. */
  | { token: MonitorToken | null; all: true; why: string }

export interface TreeWatchOptions {
  /** The tree; `skip` (its metadata folder's name) is left out at its top level. */
  root: string
  skip: string
  /** A folder of the monitor's own for the cookie files (created; inside `skip`). */
  cookies: string
  /** Distinct changed paths kept before every older token gets `all` (bounds memory). */
  maxPaths?: number
  /** Events in one drain taken as a possible overflow (default: half the kernel's queue). */
  burstLimit?: number
  /** How long a query waits for its cookie. */
  cookieTimeoutMs?: number
  /** Called when the watches no longer cover the tree (possible overflow, a watch error): walk again. */
  onLost: (why: string) => void
}

const DEFAULT_MAX_PATHS = 200_000
const WALK_ATTEMPTS = 3

function kernelQueueLimit(): number {
  try {
    const n = Number(readFileSync('/proc/sys/fs/inotify/max_queued_events', 'utf8').trim())
    return Number.isFinite(n) && n > 0 ? n : 16_384
  } catch {
    return 16_384
  }
}

const join = (dir: string, name: string): string => (dir === '' ? name : `${dir}/${name}`)
const parentOf = (p: string): string => {
  const cut = p.lastIndexOf('/')
  return cut < 0 ? '' : p.slice(0, cut)
}
const baseOf = (p: string): string => p.slice(p.lastIndexOf('/') + 1)

export class TreeWatch {
  readonly id = randomBytes(12).toString('hex')
  private seq = 0
  /** Tokens older than this get `all`; Infinity while the watches are being (re)made. */
  private validFrom = Number.POSITIVE_INFINITY
  private readonly marked = new Map<string, number>()
  private readonly watchers = new Map<string, { w: FSWatcher; ino: number }>()
  private cookieWatcher: FSWatcher | undefined
  private readonly cookieWaits = new Map<string, () => void>()
  private cookieNo = 0
  private burst = 0
  private readonly burstLimit: number
  private readonly maxPaths: number
  private closed = false
  private walking = false
  private lostWhileWalking: string | undefined

  constructor(private readonly o: TreeWatchOptions) {
    this.burstLimit = o.burstLimit ?? Math.floor(kernelQueueLimit() / 2)
    this.maxPaths = o.maxPaths ?? DEFAULT_MAX_PATHS
  }

  /** Directories watched (the root counts). */
  get directories(): number {
    return this.watchers.size
  }

  /** Whether tokens are handed out (the watches cover the tree). */
  get watching(): boolean {
    return this.validFrom !== Number.POSITIVE_INFINITY
  }

  /**
   * (Re)makes the watches of the whole tree: a watch on each directory before it is read, so
   * nothing created meanwhile is missed; watches of directories gone are closed. Tokens from
   * before it ends get `all`. Yields to the event loop every 256 directories.
   */
  async walk(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      this.walking = true
      this.lostWhileWalking = undefined
      try {
        await this.walkOnce()
      } finally {
        this.walking = false
      }
      if (this.lostWhileWalking === undefined || this.closed) return
      // Events may have been dropped while the watches were placed: a directory made then may be unwatched.
      this.validFrom = Number.POSITIVE_INFINITY
      if (attempt === WALK_ATTEMPTS) throw new UpswarmError('UPSWARM_E_IO', `the tree ${this.o.root} changed faster than it could be watched (${WALK_ATTEMPTS} walks): ${this.lostWhileWalking}`)
    }
  }

  private async walkOnce(): Promise<void> {
    this.validFrom = Number.POSITIVE_INFINITY
    if (!this.cookieWatcher) {
      mkdirSync(this.o.cookies, { recursive: true })
      this.cookieWatcher = this.watchDir(this.o.cookies, (_type, name) => {
        if (name) this.cookieWaits.get(name)?.()
      })
    }
    const seen = new Set<string>()
    const stack = ['']
    let n = 0
    while (stack.length > 0 && !this.closed) {
      const dir = stack.pop()!
      this.watchTree(dir, stack, seen, false)
      if (++n % 256 === 0) await new Promise((r) => setImmediate(r))
    }
    if (this.closed) return
    for (const [dir, { w }] of this.watchers) {
      if (!seen.has(dir)) {
        w.close()
        this.watchers.delete(dir)
      }
    }
    this.marked.clear()
    this.validFrom = this.seq
  }

  /**
   * What changed since `since`, once every event that happened before this call has been read.
   * While the watches are being made the answer is `all` without a token.
   */
  async changes(since: MonitorToken | null): Promise<ChangesAnswer> {
    if (!this.watching) return { token: null, all: true, why: 'the monitor is still watching the tree' }
    await this.syncCookie()
    if (!this.watching) return { token: null, all: true, why: 'the monitor lost events and is watching the tree again' }
    const token = { id: this.id, seq: this.seq }
    if (!since) return { token, all: true, why: 'no token' }
    if (since.id !== this.id) return { token, all: true, why: 'a token of another monitor (restarted since)' }
    if (since.seq < this.validFrom) return { token, all: true, why: 'a token from before the monitor last walked the tree' }
    const paths: string[] = []
    for (const [p, s] of this.marked) if (s > since.seq) paths.push(p)
    return { token, all: false, paths }
  }

  close(): void {
    this.closed = true
    this.validFrom = Number.POSITIVE_INFINITY
    for (const { w } of this.watchers.values()) w.close()
    this.watchers.clear()
    this.cookieWatcher?.close()
    this.cookieWatcher = undefined
    for (const wake of this.cookieWaits.values()) wake()
  }

  private watchDir(abs: string, onEvent: (type: string, name: string | null) => void): FSWatcher {
    let w: FSWatcher
    try {
      w = watch(abs, { persistent: false, encoding: 'utf8' }, onEvent)
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'ENOSPC') {
        let limit = '?'
        try {
          limit = readFileSync('/proc/sys/fs/inotify/max_user_watches', 'utf8').trim()
        } catch { /* the limit is only named */ }
        throw new UpswarmError('UPSWARM_E_IO', `cannot watch ${abs}: the inotify watch limit is reached (fs.inotify.max_user_watches = ${limit}; the tree has ${this.watchers.size}+ directories)`, { cause: err })
      }
      throw err
    }
    w.on('error', (err) => this.lose(`watch of ${abs} failed: ${err.message}`))
    return w
  }

  /** Watches `dir` (relative) if it is not yet, then lists it: subdirectories go on `stack`; with `mark`, every entry is marked. */
  private watchTree(dir: string, stack: string[], seen: Set<string> | undefined, mark: boolean): void {
    const abs = dir === '' ? this.o.root : `${this.o.root}/${dir}`
    if (!this.watchers.has(dir)) {
      let w: FSWatcher
      let ino: number
      try {
        w = this.watchDir(abs, (type, name) => this.event(dir, type, name))
        ino = lstatSync(abs).ino
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code
        if (code === 'ENOENT' || code === 'ENOTDIR') return // gone meanwhile: its parent's event says so
        throw err
      }
      this.watchers.set(dir, { w, ino })
    }
    seen?.add(dir)
    let entries
    try {
      entries = readdirSync(abs, { withFileTypes: true })
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'ENOENT' || code === 'ENOTDIR') return
      throw new UpswarmError('UPSWARM_E_IO', `cannot read directory ${abs}: ${(err as Error).message}`, { cause: err })
    }
    for (const e of entries) {
      if (dir === '' && e.name === this.o.skip) continue
      const rel = join(dir, e.name)
      if (mark) this.mark(rel, this.seq)
      if (e.isDirectory()) stack.push(rel)
    }
  }

  private event(dir: string, type: string, name: string | null): void {
    if (this.closed) return
    if (this.burst++ === 0) setImmediate(() => this.drained())
    const s = ++this.seq
    if (name === null) {
      // No name: only the directory itself is known to have changed; read it and all it holds again.
      this.mark(dir, s)
      this.lose(`an event in ${dir || '.'} without a name`)
      return
    }
    if (dir === '' && name === this.o.skip) return
    const p = join(dir, name)
    this.mark(p, s)
    if (type === 'rename') {
      this.mark(dir, s)
      this.renamed(p)
    }
    // libuv names an event on the watched directory itself by the directory's own name.
    if (dir !== '' && name === baseOf(dir)) {
      this.mark(dir, s)
      this.mark(parentOf(dir), s)
      if (type === 'rename') this.renamed(dir)
    }
  }

  private mark(p: string, s: number): void {
    this.marked.set(p, s)
    if (this.marked.size > this.maxPaths && this.watching) {
      // Too many paths to list: every token so far gets `all`, and the list starts again.
      this.marked.clear()
      this.validFrom = this.seq
    }
  }

  /**
   * A name appeared or went: watch a new directory and mark what it holds; close the watches of
   * one gone. A watch follows its directory when it moves, so a directory now at `p` that is not
   * the one watched there (moved in over it) replaces that watch and everything under it.
   */
  private renamed(p: string): void {
    let ino: number | undefined
    try {
      const st = lstatSync(`${this.o.root}/${p}`)
      if (st.isDirectory()) ino = st.ino
    } catch { /* gone */ }
    const watched = this.watchers.get(p)
    if (watched && watched.ino === ino) return
    if (watched) {
      const prefix = `${p}/`
      for (const [dir, { w }] of this.watchers) {
        if (dir === p || dir.startsWith(prefix)) {
          w.close()
          this.watchers.delete(dir)
        }
      }
    }
    if (ino === undefined) return
    const stack = [p]
    while (stack.length > 0) this.watchTree(stack.pop()!, stack, undefined, true)
  }

  private drained(): void {
    const n = this.burst
    this.burst = 0
    if (n >= this.burstLimit) this.lose(`${n} events in one read of the kernel's queue (limit ${this.burstLimit}): some may have been dropped`)
  }

  private lose(why: string): void {
    if (this.closed) return
    if (this.walking) {
      this.lostWhileWalking = why
      return
    }
    if (!this.watching) return
    this.validFrom = Number.POSITIVE_INFINITY
    this.o.onLost(why)
  }

  /** Writes a cookie into the monitor's own folder and waits for its event. */
  private async syncCookie(): Promise<void> {
    const name = `cookie-${process.pid}-${++this.cookieNo}`
    const file = `${this.o.cookies}/${name}`
    const timeoutMs = this.o.cookieTimeoutMs ?? 5_000
    let timer: NodeJS.Timeout | undefined
    try {
      await new Promise<void>((resolve, reject) => {
        this.cookieWaits.set(name, resolve)
        timer = setTimeout(() => reject(new UpswarmError('UPSWARM_E_IO', `the monitor's cookie ${file} was not seen within ${timeoutMs} ms`)), timeoutMs)
        writeFileSync(file, '')
      })
    } finally {
      clearTimeout(timer)
      this.cookieWaits.delete(name)
      rmSync(file, { force: true })
    }
  }
}
