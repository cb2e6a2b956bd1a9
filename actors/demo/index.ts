// `npm start`: the whole product on one machine. Starts the embedded cluster (3 NATS nodes, DHT
// bootstrap, 3 weighted repository servers, proxy, tracker), publishes r1, brings up client
// processes with working copies at r1, publishes r2 and lets the clients upgrade through the
// swarm, in a staged rollout (issue 16: 50% of the fleet first, then all); then rolls one client
// back, offline. Ends with a summary (or JSON).
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { formatBytes } from '../cli/output.ts'
import type { MemberView } from '../proxy/pool.ts'
import { rollout } from '../operator/rollout.ts'
import { FULL, stageOf } from '../../infra/formats/rollout.ts'
import { credsClaims } from '../../infra/nats/identity.ts'
import { Swarm, isRevertOf, type UpdateDone } from './swarm.ts'
import { editTree, generateTree, mutateTree } from './tree-gen.ts'

export interface DemoOptions {
  clients: number
  files: number
  totalBytes: number
  json: boolean
  keep: boolean
}

export interface DemoSummary {
  clients: number
  release: { r1: { files: number; bytes: number }; r2: { changed: number; added: number; removed: number; changedBytes: number; edited: number; editedFileBytes: number } }
  upgrade: {
    seconds: number
    bytesFromServers: number
    bytesFromPeers: number
    serverBytesPerChangedByte: number
    /** Issue 15: files the clients made from deltas, the bytes those cost and the bytes of the files. */
    deltas: { files: number; bytes: number; fileBytes: number }
    piecesVerified: number
    badPieces: number
    serverReasons: Record<string, number>
    perClient: { client: string; ms: number; bytesFromServers: number; bytesFromPeers: number }[]
  }
  servers: { id: string; weight: number; requests: number; bytesServed: number; assigned: number; share: number }[]
  verified: { clients: number; allCurrentAtR2: boolean }
  /** Issue 10 item 7: the root of trust the clients pinned and the notary's fresh statements they verified. */
  trust: { rootVersion: number; clientsWithFreshStatement: number; newestVouched: number }
  rollback: { client: string; from: number; to: number; source: string; seconds: number }
  /** Issue 16: r2 went to the clients whose stage is in the first half, then to all; those outside waited at r1. */
  staged: { firstHalf: string[]; waitedAtR1: boolean }
  /** Issue 16 item 2: r3 failed the clients' health check; they went back to r2 and the notary halted it. */
  halt: { rev: number; percent: number; reverted: string[]; spared: string[]; seq: number; seconds: number; allBackAtR2: boolean }
  totalSeconds: number
}

export async function runDemo(opts: DemoOptions): Promise<DemoSummary> {
  const started = Date.now()
  const say = (msg: string): void => {
    if (!opts.json) process.stdout.write(`${msg}\n`)
  }
  const dir = await mkdtemp(join(tmpdir(), 'upswarm-demo-'))
  // Format 2 beside format 1 (issue 15): the publisher makes deltas, the daemons use them.
  const swarm = new Swarm({ dir, servers: 3, weights: [5, 1, 1], formats: [1, 2] })
  try {
    say('▸ starting the embedded cluster: 3 NATS nodes (JetStream), DHT bootstrap, 3 repository servers (weights 5,1,1), proxy, tracker')
    await swarm.start()
    const src = join(dir, 'release')
    const r1 = await generateTree(src, { files: opts.files, totalBytes: opts.totalBytes, seed: 'demo-r1' })
    const p1 = await swarm.publish(src, '1.0.0')
    say(`▸ published r1 of product ${swarm.product}: ${r1.files} files, ${formatBytes(r1.bytes)} (manifest ${p1.manifestSha256!.slice(0, 16)}…)`)
    await swarm.serversSynced(1)
    // Issue 16: from the product's first rollout statement on, each release waits for its own.
    const rolloutAt = (rev: number, percent: number, resume = false) => rollout({ nc: swarm.publisherNc, product: swarm.product, rev, keys: [swarm.key], action: resume ? { resume: true, percent } : { percent } })
    await rolloutAt(1, FULL)
    const before = await swarm.stats()

    say(`▸ ${opts.clients} clients: upswarm init (working copies at r1), then upswarm daemon --auto`)
    const clients = await Promise.all(Array.from({ length: opts.clients }, (_, i) => swarm.addClient(`c${i + 1}`)))
    // Issue 16 item 2: every daemon checks the program after each install; r3 below breaks it.
    await Promise.all(clients.map((c) => c.start(['--health-cmd', HEALTH_CMD, '--health-timeout', '20'])))

    const mutated = await mutateTree(src, { seed: 'demo-r2', changeFraction: 0.2, add: 12, remove: 6 })
    // And a fix inside some files: 4 KiB overwritten in place, what deltas are for.
    const edits = await editTree(src, 'demo-r2-edit', 0.1, 4096)
    const r2 = { ...mutated, edited: edits.edited, editedFileBytes: edits.fileBytes }
    const changedBytes = r2.changedBytes + r2.editedFileBytes
    const publishStart = Date.now()
    const p2 = await swarm.publish(src, '2.0.0')
    say(`▸ published r2: ${r2.changed} files rewritten, ${r2.edited} with 4 KiB edited inside, ${r2.added} added, ${r2.removed} removed (${formatBytes(changedBytes)} of changed files; manifest ${p2.manifestSha256!.slice(0, 16)}…` +
      `${p2.deltas ? `; ${p2.deltas.count} deltas and compressed copies, ${formatBytes(p2.deltas.bytes)}` : ''})`)
    // The servers hold r2 in both formats (deltas included) before the rollout lets any client take it.
    await swarm.serversSynced(2)
    say(`▸ r2 published and held by every server (both formats, deltas included) in ${((Date.now() - publishStart) / 1000).toFixed(1)} s`)
    const upgradeStart = Date.now()
    // Each client's stage: a stable hash of its own identity (the user key in its creds file).
    const stages = new Map(await Promise.all(clients.map(async (c) => {
      const creds = String(c.env.UPSWARM_CREDS)
      return [c, stageOf(swarm.product, credsClaims(await readFile(creds, 'utf8'), creds).sub)] as const
    })))
    const HALF = FULL / 2
    const inside = clients.filter((c) => stages.get(c)! < HALF)
    const outside = clients.filter((c) => stages.get(c)! >= HALF)
    say(`▸ upswarm rollout r2 --percent 50: ${inside.length} of ${clients.length} clients are in the first half of the fleet (${inside.map((c) => c.name).join(', ') || 'none'}); the others wait at r1`)
    say('  client  time      from servers  from peers')
    const runs = clients.map(async (c) => {
      const d = await c.reached(2, 180_000)
      say(`  ${c.name.padEnd(6)}  ${(d.ms / 1000).toFixed(1).padStart(5)} s  ${formatBytes(d.bytesFromServers).padStart(12)}  ${formatBytes(d.bytesFromPeers).padStart(10)}`)
      return { client: c, d }
    })
    await rolloutAt(2, HALF)
    await Promise.all(runs.filter((_, i) => inside.includes(clients[i]!)))
    // Their daemons heard of r2 and of the statement, and ran nothing.
    const waitedAtR1 = outside.every((c) => !c.events.some((e) => e.event === 'update.started'))
    say(`▸ ${outside.length} client(s) outside the first half ${waitedAtR1 ? 'still at r1' : 'did NOT wait'}; upswarm rollout r2 --resume --percent 100`)
    await rolloutAt(2, FULL, true)
    const done = await Promise.all(runs)
    const upgradeSeconds = (Date.now() - upgradeStart) / 1000

    const { status } = await import('../updater/index.ts')
    let allCurrent = true
    const trust = { rootVersion: 0, clientsWithFreshStatement: 0, newestVouched: 0 }
    for (const c of clients) {
      const s = await status(c.dir)
      allCurrent &&= s.rev === 2 && s.files.every((f) => f.status === 'current')
      trust.rootVersion = Math.max(trust.rootVersion, s.rootVersion)
      if (s.freshness) {
        trust.clientsWithFreshStatement++
        trust.newestVouched = Math.max(trust.newestVouched, s.freshness.newestRev)
      }
    }
    const after = await swarm.stats()
    const servers = serverShares(before.servers, after.servers)

    // Issue 16 item 2: r3 breaks the program. The clients that install it fail their health
    // check, go back to r2 on their own and alert; at --max-failures distinct clients the
    // notary halts r3, and no other client installs it.
    await writeFile(join(src, 'BROKEN'), 'this build does not start\n')
    await swarm.publish(src, '3.0.0')
    await swarm.serversSynced(3)
    // Staged again: just enough of the fleet for the notary's threshold (3 distinct clients), so the halt spares the rest.
    const byStage = [...clients].sort((a, b) => stages.get(a)! - stages.get(b)!)
    const canary = Math.min(clients.length, Math.max(3, Math.ceil(clients.length / 2)))
    const percent = Math.min(100, Math.floor(stages.get(byStage[canary - 1]!)! / 100) + 1)
    const exposed = clients.filter((c) => stages.get(c)! < percent * 100)
    say(`▸ published r3, which breaks the program (the daemons' health check: ${HEALTH_CMD}); upswarm rollout r3 --percent ${percent}: ${exposed.map((c) => c.name).join(', ')} in stage`)
    const haltStart = Date.now()
    await rolloutAt(3, percent * 100)
    const halted = await swarm.haltOf(3, 180_000)
    const haltSeconds = (Date.now() - haltStart) / 1000
    say(`▸ the notary halted r3 ${haltSeconds.toFixed(1)} s after its rollout (statement seq ${halted.seq}): it failed on enough distinct clients`)
    // Each client that started r3 ends that run (reverted, or failed before installing); then every copy is read once.
    const startedR3 = clients.filter((c) => c.startedTo(3))
    await Promise.all(startedR3.map((c) => c.waitFor((e) => isRevertOf(3)(e) || e.event === 'update.failed', 120_000)))
    const revs = await Promise.all(clients.map(async (c) => (await status(c.dir)).rev))
    const backAtR2 = revs.every((r) => r === 2)
    const reverted = clients.filter((c) => c.revertedFrom(3))
    const spared = clients.filter((c) => !startedR3.includes(c))
    say(`▸ r3 failed its health check on ${reverted.length} client(s) (${reverted.map((c) => c.name).join(', ') || 'none'}): each went back to r2 by itself and alerted; ` +
      `${spared.length} never installed it; ${backAtR2 ? `all ${clients.length} clients at r2` : 'NOT all clients back at r2'}, and r3 stays halted`)

    // Roll one client back to r1: its daemon stops, the rollback uses only local history.
    const victim = clients[0]!
    await victim.stop()
    const rbStart = Date.now()
    const rb = await swarm.cli<{ from: number; to: number; source: string }>(['rollback', victim.dir, '--rev', '1', '--json'])
    const rollback = { client: victim.name, ...rb, seconds: (Date.now() - rbStart) / 1000 }

    const sum = (f: (d: UpdateDone) => number): number => done.reduce((n, x) => n + f(x.d), 0)
    const reasons: Record<string, number> = {}
    for (const { d } of done) for (const [k, v] of Object.entries(d.sources.serverReasons)) reasons[k] = (reasons[k] ?? 0) + v
    const summary: DemoSummary = {
      clients: opts.clients,
      release: { r1: { files: r1.files, bytes: r1.bytes }, r2 },
      upgrade: {
        seconds: upgradeSeconds,
        bytesFromServers: sum((d) => d.bytesFromServers),
        bytesFromPeers: sum((d) => d.bytesFromPeers),
        serverBytesPerChangedByte: sum((d) => d.bytesFromServers) / changedBytes,
        deltas: { files: sum((d) => d.deltas?.files ?? 0), bytes: sum((d) => d.deltas?.bytes ?? 0), fileBytes: sum((d) => d.deltas?.fileBytes ?? 0) },
        piecesVerified: sum((d) => d.sources.piecesFromPeers + d.sources.piecesFromServers),
        badPieces: sum((d) => d.sources.badPieces),
        serverReasons: reasons,
        perClient: done.map(({ client, d }) => ({ client: client.name, ms: d.ms, bytesFromServers: d.bytesFromServers, bytesFromPeers: d.bytesFromPeers })),
      },
      servers,
      verified: { clients: clients.length, allCurrentAtR2: allCurrent },
      trust,
      rollback,
      staged: { firstHalf: inside.map((c) => c.name), waitedAtR1 },
      halt: { rev: 3, percent, reverted: reverted.map((c) => c.name), spared: spared.map((c) => c.name), seq: halted.seq, seconds: haltSeconds, allBackAtR2: backAtR2 },
      totalSeconds: (Date.now() - started) / 1000,
    }
    if (opts.json) process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`)
    else say(render(summary))
    // A client outside r3's stage that installed it would be a staged-rollout failure.
    const outsideTookR3 = startedR3.some((c) => !exposed.includes(c))
    if (!allCurrent || !waitedAtR1 || !backAtR2 || outsideTookR3) process.exitCode = 1
    return summary
  } finally {
    await swarm.stop()
    if (!opts.keep) await rm(dir, { recursive: true, force: true })
  }
}

/** The daemons' health check (issue 16 item 2): the program "starts" unless the release ships BROKEN. */
const HEALTH_CMD = 'test ! -e "$UPSWARM_DIR/BROKEN"'

function serverShares(before: MemberView[], after: MemberView[]): DemoSummary['servers'] {
  const rows = after.map((s) => {
    const b = before.find((x) => x.id === s.id)
    return { id: s.id, weight: s.weight, requests: s.requests - (b?.requests ?? 0), bytesServed: s.bytesServed - (b?.bytesServed ?? 0), assigned: s.assigned - (b?.assigned ?? 0), share: 0 }
  })
  const total = rows.reduce((n, r) => n + r.assigned, 0) || 1
  for (const r of rows) r.share = r.assigned / total
  return rows
}

function render(s: DemoSummary): string {
  const u = s.upgrade
  return [
    '',
    '━━ summary ━━',
    `upgrade r1 → r2 of ${s.clients} clients: ${u.seconds.toFixed(1)} s from the first rollout statement until the last one was verified`,
    `  bytes from servers: ${formatBytes(u.bytesFromServers)} (${u.serverBytesPerChangedByte.toFixed(2)}× the changed content)`,
    `  bytes from peers:   ${formatBytes(u.bytesFromPeers)}`,
    `  files made from deltas (edited in place): ${u.deltas.files}, ${formatBytes(u.deltas.bytes)} of deltas for ${formatBytes(u.deltas.fileBytes)} of files`,
    `  pieces verified against the signed release (manifest piece hashes, or the tree's chunk hashes): ${u.piecesVerified}; bad pieces: ${u.badPieces}`,
    `  why servers were asked: ${Object.entries(u.serverReasons).map(([k, v]) => `${k} ${v}`).join(', ')}`,
    'server pool (weighted round-robin, assignments by the proxy during the run):',
    ...s.servers.map((r) => `  ${r.id}  weight ${r.weight}  assigned ${r.assigned} (${(r.share * 100).toFixed(0)}%)  requests ${r.requests}  served ${formatBytes(r.bytesServed)}`),
    `verified: ${s.verified.clients} working copies, all files current at r2: ${s.verified.allCurrentAtR2 ? 'yes' : 'NO'}`,
    `root of trust: clients pinned root version ${s.trust.rootVersion}; ${s.trust.clientsWithFreshStatement} of ${s.clients} hold the notary's fresh statement (newest vouched r${s.trust.newestVouched})`,
    `staged rollout: r2 at 50% reached ${s.staged.firstHalf.join(', ') || 'no client'} first; the others ${s.staged.waitedAtR1 ? 'waited at r1' : 'did NOT wait'} until 100%`,
    `automatic halt: r${s.halt.rev} at ${s.halt.percent}% failed its health check on ${s.halt.reverted.length} client(s), which went back to r2 by themselves; the notary halted it ${s.halt.seconds.toFixed(1)} s after its rollout; ${s.halt.spared.length} client(s) never installed it; all back at r2: ${s.halt.allBackAtR2 ? 'yes' : 'NO'}`,
    `rollback of ${s.rollback.client}: r${s.rollback.from} → r${s.rollback.to} from ${s.rollback.source} history in ${s.rollback.seconds.toFixed(1)} s`,
    `total ${s.totalSeconds.toFixed(1)} s`,
  ].join('\n')
}
