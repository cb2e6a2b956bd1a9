// The downloading phase: every planned path runs the file-status statechart, whose download
// child (the download statechart) is wired here to the history store, the release source and
// the staging area. Blobs land in the history store (verified, content-addressed), then each
// new file is staged as a hard link of its blob (stageBlob) — or written in place, in a directory the run made
// (direct.ts); small files come many to a request and are written on a worker thread.
import { constants } from 'node:fs'
import { chmod, copyFile, link, mkdir, stat, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createActor, fromPromise, toPromise, type AnyActorRef } from 'xstate'
import { inspectionUnder } from '../../infra/inspect/nats-inspector.ts'
import { UpswarmError, errorMessage } from '../../infra/errors.ts'
import type { Entry, FileEntry } from '../../infra/release/manifest.ts'
import type { BlobStore } from '../../infra/store/blob-store.ts'
import { syncFiles } from '../../infra/store/durable.ts'
import { FileWriteError, inlineFileWriter, threadedFileWriter, type FileToWrite, type WrittenStat } from '../../infra/store/file-writer.ts'
import { mark } from '../../infra/timings.ts'
import { PIECE_SIZE, sha1Hex, sha256Hex } from '../../infra/release/hash.ts'
import type { ChunkRef } from '../../infra/formats/tree-node.ts'
import { groupsOf } from '../../infra/batches.ts'
import { eachLimited } from '../../infra/parallel.ts'
import { NODES_MAX_HASHES } from '../../infra/formats/meta-wire.ts'
import { formatSize, freeBytes } from '../../infra/store/disk-space.ts'
import { hashContent } from '../../infra/store/working-copy/tree.ts'
import { downloadMachine, type DownloadOutput, type FetchResult } from '../../machines/download.machine.ts'
import { factEvents, fileStatusMachine, type AlertInput, type FileStatusOutput } from '../../machines/file-status.machine.ts'
import { publishAlert } from './alerts.ts'
import { prepareDirectWrites, slotFile } from './direct.ts'
import type { RunPlan, RunRequest, RunTarget, StagedSet } from '../../machines/update-run.machine.ts'
import type { RunSession } from './run-session.ts'
import { step } from './session.ts'
import { classifyFile } from './status.ts'
import { fileOutcome, type DownloadSteps } from './file-outcome.ts'

/** Paths processed at once; each blob fetch itself uses `threads` connections (R-ACCEL-1). */
const FILE_CONCURRENCY = 4
/** Paths processed at once when most blobs are in the history store already (a batch brought them). */
const LOCAL_CONCURRENCY = 16

export function wiredDownloadMachine(session: RunSession) {
  return downloadMachineWith(downloadSteps(session))
}

/** The download chart with its invoked actors doing `steps` (a run's, or a test's). */
export function downloadMachineWith(steps: DownloadSteps) {
  return downloadMachine.provide({
    actors: {
      findLocal: fromPromise(({ input }: { input: FileEntry }) => steps.findLocal(input)),
      fetch: fromPromise(({ input, signal }: { input: { entry: FileEntry; attempt: number }; signal: AbortSignal }) => steps.fetch(input, signal)),
      verify: fromPromise(({ input }: { input: FileEntry }) => steps.verify(input)),
      stage: fromPromise(({ input }: { input: { entry: Entry; slot: string } }) => steps.stage(input)),
    },
  })
}

/** What the download chart's steps do in a run: the actors above, and a run no inspector watches (file-outcome.ts). */
function downloadSteps(session: RunSession): DownloadSteps {
  return {
    findLocal: (entry) => checkLocal(session, entry),
    fetch: (input, signal) => fetchBlob(session, input.entry, signal),
    verify: (entry) => verifyBlob(session, entry),
    stage: (input) => stageEntry(session, input.entry, input.slot),
  }
}

/**
 * Whether the history store holds this blob intact: it is re-hashed (SHA-1, SHA-256, size)
 * before it is staged, since a history store on disk can rot or be tampered with. A corrupt
 * blob is dropped, so the download fetches it again.
 */
function checkLocal(session: RunSession, entry: FileEntry): Promise<boolean> {
  if (session.verified.has(entry.sha256)) return Promise.resolve(true)
  const running = session.localChecks.get(entry.sha256)
  if (running) return running
  const check = (async () => {
    const history = session.wc.history
    if (!(await history.has(entry.sha256))) return false
    const h = await heldDigests(history, entry)
    if (h.sha1 === entry.sha1 && h.sha256 === entry.sha256 && h.size === entry.size) {
      session.verified.add(entry.sha256)
      return true
    }
    await history.remove(entry.sha256)
    session.opts.log.warn({ path: entry.path, sha256: entry.sha256, found: h },
      `the local history copy of ${entry.path} (blob ${entry.sha256}) is corrupt (${h.size} bytes, SHA-256 ${h.sha256}); dropped, fetching it again`)
    return false
  })()
  session.localChecks.set(entry.sha256, check)
  return check
}

/** One fetch per blob at a time: paths sharing content wait for the same transfer. */
async function fetchBlob(session: RunSession, entry: FileEntry, signal: AbortSignal): Promise<FetchResult> {
  const running = session.inflight.get(entry.sha256)
  if (running) {
    await running
    return { bytesFromServers: 0, bytesFromPeers: 0 }
  }
  const source = session.opts.source
  if (!source) {
    throw session.noteError(new UpswarmError('UPSWARM_E_NO_SERVER',
      `${entry.path} (blob ${entry.sha256}) is not in the local history store of ${session.wc.layout.root} and no release source (network) was given; connect to the servers and try again`))
  }
  session.markNetworkUsed()
  // Issue 15: from a delta or a compressed copy when the release lists one this copy can use.
  const p = session.deltas.fetch(session, entry, signal)
    .then(async (viaDelta) => viaDelta ?? source.fetchBlob(entry, session.wc.history, { signal, threads: session.opts.threads, ...(await chunksFor(session, entry)) }))
  session.inflight.set(entry.sha256, p)
  try {
    const got = await p
    // Checked against the signed manifest as it was committed: verifyBlob need not read it again.
    if (got.verified) session.verified.add(entry.sha256)
    return { bytesFromServers: got.bytesFromServers, bytesFromPeers: got.bytesFromPeers }
  } catch (err) {
    // Issue 11 item 8: an operator may have pruned the target while it downloaded.
    const pruned = signal.aborted ? undefined : await session.prunedRefusal()
    throw session.noteError(pruned ?? err)
  } finally {
    session.inflight.delete(entry.sha256)
  }
}

/**
 * A format-2 file of more than one piece, for a source that checks pieces by chunks (the swarm):
 * its chunk list from the signed tree. Without one (not found, not readable) the source fetches the
 * file from the servers, checked whole, so a failure here is only a warning.
 */
async function chunksFor(session: RunSession, entry: FileEntry): Promise<{ chunks?: ChunkRef[] }> {
  if (!session.opts.source?.piecesByChunks || session.format !== 2 || entry.pieces || entry.size <= PIECE_SIZE) return {}
  const chunks = await session.deltas.chunkList(session, entry).catch((err: unknown) => {
    session.opts.log.warn({ path: entry.path }, `cannot read the chunk list of ${entry.path} (${errorMessage(err)}); it comes from the servers, checked whole`)
    return undefined
  })
  return chunks ? { chunks } : {}
}

/** Size, SHA-1 and SHA-256 of the history store's copy of `entry`'s blob: from its pack, or its file. */
async function heldDigests(history: BlobStore, entry: FileEntry): Promise<{ size: number; sha1: string; sha256: string }> {
  const packed = await history.packed(entry.sha256)
  return packed ? { size: packed.length, sha1: sha1Hex(packed), sha256: sha256Hex(packed) } : hashContent(history.path(entry.sha256), entry.size)
}

/** R-VERIFY: SHA-1 AND SHA-256 (and size) of the stored blob against the signed manifest. */
async function verifyBlob(session: RunSession, entry: FileEntry): Promise<void> {
  if (session.verified.has(entry.sha256)) return
  const history = session.wc.history
  const h = await heldDigests(history, entry).catch((err: unknown) => {
    throw session.noteError(new UpswarmError('UPSWARM_E_NOT_FOUND', `the source reported ${entry.path} fetched, but blob ${entry.sha256} is not in the history store`, { cause: err }))
  })
  if (h.sha1 !== entry.sha1 || h.sha256 !== entry.sha256 || h.size !== entry.size) {
    await history.remove(entry.sha256)
    throw session.noteError(new UpswarmError('UPSWARM_E_HASH_MISMATCH',
      `${entry.path}: downloaded ${h.size} bytes with SHA-1 ${h.sha1} / SHA-256 ${h.sha256}, but the signed manifest says ${entry.size} bytes, SHA-1 ${entry.sha1} / SHA-256 ${entry.sha256}; discarded`))
  }
  session.verified.add(entry.sha256)
}

/** Puts the new entry, complete and durable, in its staging slot (or in place: direct.ts). */
async function stageEntry(session: RunSession, entry: Entry, slot: string): Promise<void> {
  const dest = slotFile(session, entry.path, slot)
  try {
    if (entry.kind === 'file') {
      // A slot the batch filled from its verified bytes is staged already.
      if (!session.prestaged.has(entry.path)) {
        const packed = await session.wc.history.packed(entry.sha256)
        let mode: number | undefined
        if (packed) await writeFile(dest, packed, { flag: 'wx' })
        else mode = await stageBlob(session, entry.sha256, dest)
        // A link to a history file that has the entry's mode already needs no chmod.
        if (mode !== entry.mode) await chmod(dest, entry.mode)
        // Made durable with every other staged file at the end of the phase (syncFiles), before the journal names it.
        session.stagedFiles.push(dest)
      }
    } else if (entry.kind === 'symlink') {
      await symlink(entry.target, dest)
    }
  } catch (err) {
    throw session.noteError(new UpswarmError('UPSWARM_E_IO',
      `cannot stage ${entry.path} in ${dest}: ${errorMessage(err)}. Nothing in the tree was changed; free space or fix permissions and run the update again`,
      { cause: err, details: { path: entry.path } }))
  }
  step(`stage ${entry.path}`)
}

/**
 * A loose blob becomes the tree's file by a hard link to its history file, not a copy: each
 * byte is written once, and the working copy plus its history take the disk space of one copy.
 * Only one tree path links a blob (a path beside it with the same content gets a copy: an edit
 * in place of one must not change the other), and only a blob no tree file links already. A
 * tree file edited in place changes its history file too: every use of a history file hashes
 * it first (checkLocal), and the daemon does not serve a shared one once the stat cache shows
 * its tree file changed (share-daemon/serve.ts). docs/decisions.md, "A new file is its history file".
 * Returns the linked file's mode (undefined for a copy).
 */
async function stageBlob(session: RunSession, sha256: string, dest: string): Promise<number | undefined> {
  const blob = session.wc.history.path(sha256)
  if (!session.linked.has(sha256)) {
    session.linked.add(sha256)
    const st = await stat(blob).catch(() => undefined)
    // The staged file is the history file: its mode is the blob's.
    if (st?.nlink === 1 && (await link(blob, dest).then(() => true, () => false))) return st.mode & 0o7777
  }
  await copyFile(blob, dest, constants.COPYFILE_FICLONE)
  return undefined
}

/** The tasks in the order the source asks for (files to fetch by rank; the others first, they are quick). */
function scheduled(session: RunSession, tasks: RunPlan['tasks']): { concurrency: number; order: RunPlan['tasks'] } {
  const schedule = session.opts.source?.schedule?.()
  if (!schedule) return { concurrency: FILE_CONCURRENCY, order: tasks }
  const rank = new Map(tasks.map((t) => [t, t.facts.target?.kind === 'file' ? schedule.rank(t.facts.target) : -Infinity] as const))
  return { concurrency: Math.max(1, schedule.concurrency), order: [...tasks].sort((a, b) => rank.get(a)! - rank.get(b)!) }
}

/** Room kept free beyond what an update needs: metadata, journal, file system overhead. */
const SPACE_MARGIN = 64 * 1024

/**
 * Issue 11 item 8: before anything is downloaded, the file system of the working copy must hold
 * the new blobs (local history) and their staged copies. Otherwise a clear error, and nothing is
 * written: a full disk found half-way would cost a failed run and a retry of every byte.
 */
async function checkFreeSpace(session: RunSession, plan: RunPlan): Promise<void> {
  const blobs = new Map<string, number>()
  let staged = 0
  let largest: { path: string; size: number } | undefined
  for (const t of plan.tasks) {
    const e = t.facts.target
    if (e?.kind !== 'file') continue
    staged += e.size
    blobs.set(e.sha256, e.size)
    if (!largest || e.size > largest.size) largest = { path: t.path, size: e.size }
  }
  if (staged === 0) return
  const free = await freeBytes(session.wc.layout.meta)
  // Counting every blob as new is the bound: when that fits, no history store lookup is needed
  // (a first install of a large tree would otherwise stat every blob twice).
  let fetched = [...blobs.values()].reduce((n, size) => n + size, 0)
  if (staged + fetched + SPACE_MARGIN > free) {
    fetched = 0
    for (const [sha, size] of blobs) if (!(await session.wc.history.has(sha))) fetched += size
  }
  const needed = staged + fetched + SPACE_MARGIN
  if (needed > free) {
    throw session.noteError(new UpswarmError('UPSWARM_E_IO',
      `not enough free space for this update of ${session.wc.layout.root}: it needs about ${formatSize(needed)} (${formatSize(fetched)} of new content kept in local history, ` +
      `${formatSize(staged)} staged beside the working copy; the largest file is ${largest!.path}, ${formatSize(largest!.size)}) and ${formatSize(free)} are free ` +
      `(ENOSPC ahead); nothing was changed. Free some space and run it again.`,
      { details: { needed, free, fetched, staged } }))
  }
}

/** Files at most this large are fetched by the batch (a unit of their own, §1.7: no chunk reuse applies). */
const BATCH_UNIT_MAX = 64 * 1024
/** Fewer small files than this go the per-file way (a batch saves round trips, not bytes). */
const BATCH_MIN = 2
/** Bytes one `units` request asks for at most (the reply's cap is 4 MiB). */
const BATCH_BYTES = 3 * 1024 * 1024
/** `units` requests in flight. */
const BATCH_REQUESTS = 4
/** Batches of this many requests or more go over the server's bulk port (HTTPS), fewer over NATS. */
const BULK_GROUPS_MIN = 4
/** Where a planned file is written (its staging slot, or in place) and its path in the tree. */
interface Slot { dest: string; path: string }

/** Staged files from batches at or beyond which a worker thread writes them (infra/store/file-writer.ts). */
export const WRITER_THREAD_MIN = 2000

/**
 * Issue 13 item 4: the planned small files the history store lacks, fetched many to a request
 * (the source's `units`), each checked against the signed entry — size, SHA-1, SHA-256 (R-VERIFY) —
 * before it is kept in the history store; the per-file statecharts then find them there. What a
 * batch does not bring (a server without `units`, a unit it lacks, one that did not verify) is
 * fetched the per-file way, as before. Files a delta or a compressed copy makes are left to it.
 */
async function prefetchSmallFiles(session: RunSession, entries: Iterable<Entry | undefined>, min = BATCH_MIN, slots?: Map<string, Slot[]>): Promise<number> {
  return fetchSmallFiles(session, batchable(session, entries, min), min, slots)
}

/** The files a batch would ask for (fewer than `min`: none, they go the per-file way). */
function batchable(session: RunSession, entries: Iterable<Entry | undefined>, min: number): Map<string, FileEntry> {
  const wanted = new Map<string, FileEntry>()
  if (!session.opts.source?.units) return wanted
  for (const e of entries) {
    if (e?.kind === 'file' && e.size <= BATCH_UNIT_MAX && !session.verified.has(e.sha256) && !session.deltas.hasDeltaFor(e.sha256)) wanted.set(e.sha256, e)
  }
  if (wanted.size < min) wanted.clear()
  return wanted
}

async function fetchSmallFiles(session: RunSession, wanted: Map<string, FileEntry>, min: number, slots?: Map<string, Slot[]>): Promise<number> {
  const source = session.opts.source
  if (!source?.units || wanted.size === 0) return 0
  const history = session.wc.history
  await history.ready()
  const held = history.heldSync()
  const todo = [...wanted.values()].filter((e) => !held(e.sha256))
  if (todo.length < min) return 0
  session.markNetworkUsed()
  // Asked in hash order: a publisher cuts its packs from units sorted by hash, so a batch is
  // mostly one run of one pack, which the server reads at once.
  todo.sort((a, b) => (a.sha256 < b.sha256 ? -1 : a.sha256 > b.sha256 ? 1 : 0))
  const groups = groupsOf(todo, (e) => e.size, BATCH_BYTES, NODES_MAX_HASHES)
  // Several requests' worth goes over the server's bulk port: a handful of files does not pay for its TLS handshake.
  const overBulk = { bulk: groups.length >= BULK_GROUPS_MIN }
  const product = session.wc.config.product
  let bytes = 0
  let done = 0
  let next = 0
  let slotted = 0
  for (const e of todo) slotted += slots?.get(e.sha256)?.length ?? 0
  // A file written in place stays as written: its fstat is what the stat cache records (apply.ts).
  const onWritten = ({ label }: { label?: string }, st: WrittenStat): void => {
    if (label !== undefined && session.direct.has(label)) session.writtenStats.set(label, st)
  }
  const writer = slotted >= WRITER_THREAD_MIN ? threadedFileWriter({ onWritten }) : inlineFileWriter({ onWritten })
  /** The packs of the batches, indexed once the writer wrote them; their temporary files, to name a failure. */
  const packsWritten: { adopt(): void }[] = []
  const packTmps = new Set<string>()
  const historyError = (err: unknown): unknown => session.noteError(new UpswarmError('UPSWARM_E_IO',
    `cannot keep small files in the history store ${history.root}: ${errorMessage(err)}. Nothing in the tree was changed; free space or fix permissions and run the update again`,
    { cause: err }))
  const stagingError = (err: unknown): unknown => {
    const { path: dest = '', label: path } = err instanceof FileWriteError ? err.failure : {}
    if (packTmps.has(dest)) return historyError(err)
    return session.noteError(new UpswarmError('UPSWARM_E_IO',
      `cannot stage ${path ?? 'a file'} in ${dest}: ${errorMessage(err)}. Nothing in the tree was changed; free space or fix permissions and run the update again`,
      { cause: err, ...(path ? { details: { path } } : {}) }))
  }
  try {
    await Promise.all(Array.from({ length: BATCH_REQUESTS }, async () => {
      while (next < groups.length) {
        const g = groups[next++]!
        const got = await source.units!(product, g.map((e) => e.sha256), overBulk).catch((err: unknown) => {
          session.opts.log.warn({ files: g.length }, `cannot fetch ${g.length} small files by the batch (${errorMessage(err)}); fetching them one by one`)
          return new Map<string, Uint8Array>()
        })
        const kept = new Map([...got].filter(([sha, b]) => {
          const e = wanted.get(sha)!
          // The decoder checked the SHA-256; R-VERIFY wants size and SHA-1 too.
          if (b.length === e.size && sha1Hex(b) === e.sha1) return true
          session.opts.log.warn({ path: e.path, sha256: sha }, `${e.path}: the batch brought bytes that do not match its SHA-1 or size; fetching it alone`)
          return false
        }))
        // The batch goes into the history store as one pack: one file, not one per blob, written by
        // the writer with the batch's files and indexed once written (below). Made durable with the
        // staged files (syncFiles below): one syncfs, or an fsync each.
        const files: FileToWrite[] = []
        try {
          const pack = history.prepareVerifiedPack(kept)
          if (!pack) session.stagedFiles.push(...history.putVerifiedManySync(kept))
          else {
            if (pack.write) {
              files.push({ path: pack.write.tmp, renameTo: pack.file, mode: 0o644, bytes: pack.write.bytes })
              packTmps.add(pack.write.tmp)
            }
            // Its adopt only: the pack object holds the pack's bytes, which would stay until the
            // last batch (a first install of 1 000 000 files kept its 2 GiB of packs in memory).
            packsWritten.push({ adopt: pack.adopt })
            session.stagedFiles.push(pack.file)
          }
        } catch (err) {
          throw historyError(err)
        }
        // Staged from the verified bytes in hand, so the path's statechart finds its slot filled
        // (stageEntry) instead of copying the blob back out of the history store.
        for (const [sha, b] of kept) {
          const e = wanted.get(sha)!
          session.verified.add(sha)
          for (const { dest, path } of slots?.get(sha) ?? []) {
            files.push({ path: dest, mode: e.mode, bytes: b, label: path })
            session.prestaged.add(path)
            session.stagedFiles.push(dest)
          }
        }
        await writer.write(files).catch((err: unknown) => { throw stagingError(err) })
        for (const [, b] of kept) bytes += b.length
        done += kept.size
        session.progress({ phase: 'downloading', done, total: todo.length, bytes, path: g[g.length - 1]!.path })
      }
    }))
    await writer.flush().catch((err: unknown) => { throw stagingError(err) })
    for (const pack of packsWritten) pack.adopt()
  } finally {
    await writer.close()
  }
  return bytes
}


/** The download statechart's output for a blob found verified in hand, its slot filled: nothing fetched. */
const FOUND_STAGED: DownloadOutput = Object.freeze({ ok: true, source: 'local', attempts: 0, bytesFromServers: 0, bytesFromPeers: 0, errors: [] as string[] })

/**
 * Issue 13 item 4: the file-status statechart's output for a path whose file a batch already
 * verified (R-VERIFY) and staged, when no inspector watches: the status comes from the table
 * compiled from the statechart (as `status` classifies), and for `missing` (R-STATUS-5) and
 * `outdated` (R-STATUS-4) the chart's only way on is downloading → staged, whose download finds
 * the blob verified and its slot filled. The same output as the actor's (a test runs both), without
 * an actor per file: on a first install of 20 000 small files the actors were a third of the time.
 * Undefined for anything else, which runs its actor.
 */
export function prestagedOutcome(session: Pick<RunSession, 'prestaged' | 'verified'>, task: RunPlan['tasks'][number]): FileStatusOutput | undefined {
  const target = task.facts.target
  if (target?.kind !== 'file' || !task.slot || !session.verified.has(target.sha256) || !session.prestaged.has(task.path)) return undefined
  const status = classifyFile(task.facts)
  if (status !== 'missing' && status !== 'outdated') return undefined
  return { path: task.path, status, outcome: 'staged', action: 'put', download: { ...FOUND_STAGED, errors: [] }, alerted: false }
}

/** Runs a file-status actor per planned path; `run`, the update-run actor they work for, is their parent in inspection. */
export async function downloadPlanned(session: RunSession, request: RunRequest, target: RunTarget, plan: RunPlan, run?: AnyActorRef): Promise<StagedSet> {
  await checkFreeSpace(session, plan)
  await mkdir(join(session.wc.layout.staging, 'new'), { recursive: true })
  await prepareDirectWrites(session, request, target, plan)
  const slots = new Map<string, Slot[]>()
  for (const t of plan.tasks) {
    const e = t.facts.target
    if (e?.kind !== 'file' || !t.slot) continue
    const slot = { dest: slotFile(session, t.path, t.slot), path: t.path }
    const same = slots.get(e.sha256)
    if (same) same.push(slot)
    else slots.set(e.sha256, [slot])
  }
  // The small files come by the batch while the others are fetched one by one (issue 15 item 4:
  // the two phases one after the other cost a small update a round trip); a planned path whose
  // file the batch asks for waits for it, and finds it in the history store.
  const wanted = batchable(session, plan.tasks.map((t) => t.facts.target), BATCH_MIN)
  let batchFailed = false
  const batch = fetchSmallFiles(session, wanted, BATCH_MIN, slots).then((n) => {
    mark('download: small files fetched by the batch')
    return n
  }, (err: unknown) => {
    batchFailed = true
    throw err
  })
  // Awaited below; a per-file failure that ends the run first must not leave it unhandled.
  batch.catch(() => undefined)
  const steps = downloadSteps(session)
  const machine = fileStatusMachine.provide({
    actors: {
      alert: fromPromise(({ input }: { input: AlertInput }) => publishAlert(session, input, target)),
      download: downloadMachineWith(steps),
    },
  })
  const files: FileStatusOutput[] = []
  let next = 0
  let bytes = 0
  const tasks = scheduled(session, plan.tasks)
  const waitsForBatch = (t: RunPlan['tasks'][number]): boolean => t.facts.target?.kind === 'file' && wanted.has(t.facts.target.sha256)
  if (wanted.size > 0) {
    // The batch's files last (in the schedule's order each): they are local copies once it is in,
    // which want more of them in flight than network fetches do.
    tasks.order = [...tasks.order.filter((t) => !waitsForBatch(t)), ...tasks.order.filter(waitsForBatch)]
    tasks.concurrency = Math.max(tasks.concurrency, LOCAL_CONCURRENCY)
  }
  const workers = Promise.all(Array.from({ length: tasks.concurrency }, async () => {
    while (next < tasks.order.length && !batchFailed) {
      const task = tasks.order[next++]!
      if (waitsForBatch(task)) await batch
      const inspect = inspectionUnder(run)
      // Uninspected, the charts' outcome without an actor each (file-outcome.ts); a conflict, and
      // every path of an inspected run, runs its actor.
      const input = { path: task.path, onConflict: request.onConflict, ...(task.slot ? { slot: task.slot } : {}) }
      let out = inspect.inspect ? undefined : prestagedOutcome(session, task) ?? await fileOutcome(input, task.facts, classifyFile(task.facts), steps)
      if (!out) {
        const actor = createActor(machine, { input, ...inspect })
        actor.start()
        // The facts arrive as events; the statechart decides the status after the last one it needs.
        for (const fact of factEvents(task.facts)) if (actor.getSnapshot().matches('classifying')) actor.send(fact)
        out = await toPromise(actor)
      }
      files.push(out)
      bytes += (out.download?.bytesFromServers ?? 0) + (out.download?.bytesFromPeers ?? 0)
      session.progress({ phase: 'downloading', done: files.length, total: tasks.order.length, bytes, path: task.path })
    }
  }))
  // A failed file fails the run once the batch has stopped writing too (its staging is discarded).
  await workers.catch(async (err: unknown) => {
    await batch.catch(() => undefined)
    throw err
  })
  const batched = await batch
  mark('download: files staged')
  // Every staged file on disk before the apply's journal moves it into place (one syncfs, not an fsync each).
  try {
    await syncFiles(session.wc.layout.staging, session.stagedFiles.splice(0))
  } catch (err) {
    throw session.noteError(new UpswarmError('UPSWARM_E_IO', `cannot make the staged files in ${session.wc.layout.staging} durable: ${errorMessage(err)}. Nothing in the tree was changed; run the update again`, { cause: err }))
  }
  return {
    files,
    failed: files.filter((f) => f.outcome === 'failed').map((f) => f.path),
    bytesFromServers: batched + files.reduce((n, f) => n + (f.download?.bytesFromServers ?? 0), 0),
    bytesFromPeers: files.reduce((n, f) => n + (f.download?.bytesFromPeers ?? 0), 0),
  }
}

/**
 * History prefetch: makes sure the history store holds these blobs (no staging). Returns one
 * message per blob that could not be fetched. `run`, the update-run actor, is the download actors' parent in inspection.
 */
export async function prefetchBlobs(session: RunSession, entries: FileEntry[], run?: AnyActorRef): Promise<string[]> {
  // Small ones by the batch first, however few (the older revision's versions of the changed files).
  await prefetchSmallFiles(session, entries, 1)
  const machine = wiredDownloadMachine(session)
  const problems: string[] = []
  await eachLimited(entries, FILE_CONCURRENCY, async (entry) => {
    const actor = createActor(machine, { input: { entry }, ...inspectionUnder(run) })
    actor.start()
    const out = await toPromise(actor)
    if (!out.ok) problems.push(`cannot keep ${entry.path} (${entry.sha256}) in the history store: ${out.errors.join('; ')}`)
  })
  return problems
}
