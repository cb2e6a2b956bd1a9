// Commands of the publisher and operators: keygen, publish, stats, prune, alerts.
import type { Command } from 'commander'
import { once } from 'node:events'
import { UpswarmError } from '../../infra/errors.ts'
import type { StatsReply } from '../proxy/index.ts'
import { action, intArg, revArg, jsonOption, natsOption, credsOption, tlsCaOption, trustOption, swarmIdentityOption, inspectOption, inspectIfAsked } from './common.ts'
import { formatBytes, printResult, progressLine } from './output.ts'

export function registerRepositoryCommands(program: Command): void {
  program
    .command('keygen')
    .description('create an Ed25519 publisher key pair; prints the public key (hex) that clients pin')
    .requiredOption('--out <file>', 'key file to create (mode 0600; never overwritten)')
    .addOption(jsonOption())
    .action(action(async (o) => {
      const { generatePublisherKey, writeKeyFile } = await import('../../infra/release/keys.ts')
      const key = generatePublisherKey()
      await writeKeyFile(o.out, key)
      printResult(!!o.json, { publicKey: key.publicKey, file: o.out }, () => key.publicKey)
    }))

  program
    .command('publish <src>')
    .description('publish the tree SRC as the next revision of a product (signed, uploaded once, replicated)')
    .requiredOption('--product <uuid>', 'product UUID')
    .requiredOption('--key <file>', 'publisher key file (from keygen)')
    .option('--label <label>', 'human version label, e.g. 2.4.1')
    .option('--feed-dir <dir>', 'keep the release feed here between publishes (default: a temporary directory)')
    .option('--no-feed', 'write the release stream only; the next publish appends this release to the release feed')
    .addOption(trustOption('trust file: pins a new product to --key (created when missing); refuses a product pinned to another key'))
    .option('--private', 'mark the product private in the trust file (format 2) before anything is written: servers serve it to fleet members only (needs --trust)')
    .addOption(natsOption()).addOption(credsOption()).addOption(tlsCaOption()).addOption(swarmIdentityOption())
    .addOption(inspectOption())
    .addOption(jsonOption())
    .action(action(async (src: string, o) => {
      if (o.private && !o.trust) throw new UpswarmError('UPSWARM_E_CONFIG', '--private marks the product private in the trust file: give --trust FILE (or UPSWARM_TRUST)')
      const [{ readKeyFile }, { connectNats }, { publish }] = await Promise.all([
        import('../../infra/release/keys.ts'), import('../../infra/nats/connect.ts'), import('../publisher/publish.ts')])
      const key = await readKeyFile(o.key)
      const swarmIdentity = o.swarmIdentity ? await (await import('../../infra/swarm/fleet.ts')).loadSwarmIdentity(o.swarmIdentity) : undefined
      const nc = await connectNats(o.nats, 'upswarm-publish', o)
      const inspecting = await inspectIfAsked(o, 'publisher', nc)
      const bar = progressLine(!o.json)
      try {
        const r = await publish({
          nc, src, product: o.product, key, label: o.label, feedDir: o.feedDir, skipFeed: o.feed === false, trust: o.trust, ...(o.private ? { private: true } : {}), ...(swarmIdentity ? { swarmIdentity } : {}),
          onProgress: (p) => bar.update(p.phase === 'scan'
            ? `hashing: ${p.done} files, ${formatBytes(p.bytes)}`
            : p.phase === 'upload'
              ? `uploading: ${p.done}/${p.total} blobs, ${formatBytes(p.bytes)} new`
              : p.phase === 'deltas'
                ? `deltas: ${p.done}/${p.total} changed files`
                : 'updating the release feed'),
        })
        bar.done()
        for (const m of r.skipped) process.stderr.write(`upswarm: skipped ${m.stream} seq ${m.seq} (${m.kind}): ${m.reason}\n`)
        const { release: _release, unchanged, ...summary } = r
        const feedLine = r.feed.appended
          ? `release feed: ${r.feed.length} blocks, held by ${r.feed.servers} server(s)${r.feed.added > 1 ? `; ${r.feed.added} appended, earlier missing releases included` : ''}`
          : `release feed: not updated: ${r.feed.reason}`
        printResult(!!o.json, { ...summary, unchanged }, () => (unchanged
          ? `${r.product}: tree unchanged; newest is still r${r.rev} (${r.manifestSha256 ?? r.release2?.id})`
          : `${r.product}: published r${r.rev}${r.label ? ` (${r.label})` : ''}: ${r.files} files, ${formatBytes(r.bytes)}; ` +
            `${r.newBlobs} new blobs, ${formatBytes(r.newBytes)} uploaded` +
            (r.manifestSha256 ? `; manifest ${r.manifestSha256}` : '') +
            (r.release2 ? `; format-2 release ${r.release2.id} (${r.release2.nodes} tree nodes, ${r.release2.newNodes} new)` : '') +
            (r.deltas ? `; ${r.deltas.count} deltas, ${formatBytes(r.deltas.bytes)} for ${formatBytes(r.deltas.targetBytes)} of changed files` : '')) +
          (r.deltaWarning ? `\nwarning: ${r.deltaWarning}` : '') + `\n${feedLine}`)
      } finally {
        await inspecting.stop()
        await nc.close()
      }
    }))

  program
    .command('demo')
    .description('the whole product on this machine: cluster, publish r1, client daemons, publish r2, swarm upgrade, rollback')
    .option('--clients <n>', 'client processes', intArg('--clients'), 8)
    .option('--files <n>', 'files in r1', intArg('--files'), 300)
    .option('--mib <n>', 'size of r1 in MiB', intArg('--mib'), 24)
    .option('--keep', 'keep the demo directory')
    .addOption(jsonOption())
    .action(action(async (o) => {
      const { runDemo } = await import('../demo/index.ts')
      await runDemo({ clients: o.clients, files: o.files, totalBytes: o.mib * 1024 * 1024, json: !!o.json, keep: !!o.keep })
    }))

  program
    .command('stats')
    .description('the server pool as a proxy sees it: health, weights, synced revisions, load')
    .addOption(natsOption()).addOption(credsOption()).addOption(tlsCaOption())
    .addOption(jsonOption())
    .action(action(async (o) => {
      const [{ connectNats }, { proxySubject }, { requestJson }, { prunedRange }] = await Promise.all([
        import('../../infra/nats/connect.ts'), import('../../infra/nats/names.ts'), import('../../infra/nats/service.ts'), import('../../infra/nats/prune-records.ts')])
      const nc = await connectNats(o.nats, 'upswarm-stats', o)
      try {
        const stats = await requestJson<StatsReply>(nc, proxySubject('stats'), {})
        printResult(!!o.json, stats, () => [
          `proxy ${stats.proxy}`,
          ...stats.servers.map((s) => `${s.id.padEnd(12)} ${s.state.padEnd(8)} weight ${s.weight}  requests ${s.requests}  served ${formatBytes(s.bytesServed)}  ` +
            `synced ${Object.entries(s.synced).map(([p, r]) => `${p.slice(0, 8)}…=r${r}`).join(' ') || '-'}` +
            Object.entries(s.pruned ?? {}).map(([p, r]) => `\n${''.padEnd(12)} pruned ${p} ${prunedRange(r)} (file contents removed by an operator)`).join('') +
            (s.parked ?? []).map((p) => `\n${''.padEnd(12)} parked ${p.product} r${p.rev} (seq ${p.seq}) since ${p.at}: ${p.reason}`).join('') +
            (s.stalled ? `\n${''.padEnd(12)} waiting for disk space since ${s.stalled.since}: ${s.stalled.reason}` : '')),
        ].join('\n'))
      } finally {
        await nc.close()
      }
    }))

  program
    .command('rollout <product> <rev>')
    .description('staged rollout of a release (issue 16 item 1): a signed statement on the product\'s rollout subject saying which share of the fleet (and which rings) its --auto clients install it on; --pause, --resume, --halt (publisher creds; the rollout or publish key of the root, or its halt key for --halt)')
    .requiredOption('--key <file>', 'the rollout key (`upswarm keygen`), or a publish key when the root names no rollout role')
    .option('--percent <p>', 'share of the fleet, 0-100 with up to 2 decimals; grows keep the clients already in (a stable hash of each client\'s identity)', percentArg)
    .option('--ring <label...>', 'ring labels whose clients are in whatever the percentage (a client names its ring with --ring)')
    .option('--pause', 'stop the rollout where it is: clients already on it stay, no new client takes it')
    .option('--resume', 'go on (with --percent, at a new share)')
    .option('--halt', '--auto clients on it roll back to the newest revision that is not halted')
    .addOption(natsOption()).addOption(credsOption()).addOption(tlsCaOption())
    .addOption(jsonOption())
    .action(action(async (product: string, revText: string, o) => {
      const rev = revArg('REV')(revText)
      const modes = [o.percent !== undefined && !o.resume, !!o.pause, !!o.resume, !!o.halt].filter(Boolean).length
      if (modes !== 1) throw new UpswarmError('UPSWARM_E_CONFIG', 'rollout: give exactly one of --percent P, --pause, --resume [--percent P], --halt')
      if (o.ring && (o.pause || o.halt || o.resume)) throw new UpswarmError('UPSWARM_E_CONFIG', 'rollout: --ring goes with --percent (a new stage), not with --pause, --resume or --halt')
      const [{ readKeyFile }, { connectNats }, { rollout }] = await Promise.all([
        import('../../infra/release/keys.ts'), import('../../infra/nats/connect.ts'), import('../operator/rollout.ts')])
      const key = await readKeyFile(o.key)
      const nc = await connectNats(o.nats, 'upswarm-rollout', o)
      try {
        const r = await rollout({
          nc, product: String(product).toLowerCase(), rev, keys: [key],
          action: o.halt ? { halt: true } : o.pause ? { pause: true } : o.resume ? { resume: true, ...(o.percent !== undefined ? { percent: o.percent } : {}) } : { percent: o.percent, ...(o.ring ? { rings: o.ring } : {}) },
        })
        printResult(!!o.json, r, () => `${r.product} r${r.rev}: ${r.state} at ${r.percent / 100}%${r.rings.length ? ` and rings ${r.rings.join(', ')}` : ''} (statement ${r.seq}, ${r.previous ? `was ${r.previous.state} at ${r.previous.percent / 100}%` : 'the first for this revision'}; UPSWARM_META seq ${r.streamSeq})`)
      } finally {
        await nc.close()
      }
    }))

  program
    .command('prune <product>')
    .description("bound the servers' storage (issue 11 item 8): remove the file contents only a product's oldest revisions use from the object store and every repository server; the signed releases stay (operator creds)")
    .option('--keep <n>', 'keep the newest N revisions', intArg('--keep'))
    .option('--before <rev>', 'prune every revision before REV', revArg('--before'))
    .option('--dry-run', 'count what would be removed and change nothing')
    .addOption(trustOption("trust file naming the product's publish keys, when the root of trust does not list it (the servers' trust file)"))
    .addOption(natsOption()).addOption(credsOption()).addOption(tlsCaOption())
    .addOption(jsonOption())
    .action(action(async (product: string, o) => {
      if ((o.keep === undefined) === (o.before === undefined)) throw new UpswarmError('UPSWARM_E_CONFIG', 'prune: give either --keep N (the newest N revisions stay) or --before REV (every revision before REV goes)')
      const [{ connectNats }, { prune }, { prunedRange }] = await Promise.all([import('../../infra/nats/connect.ts'), import('../operator/prune.ts'), import('../../infra/nats/prune-records.ts')])
      const nc = await connectNats(o.nats, 'upswarm-prune', o)
      const bar = progressLine(!o.json)
      try {
        const r = await prune({
          nc, product, dryRun: !!o.dryRun, ...(o.keep !== undefined ? { keep: o.keep } : { before: o.before }), ...(o.trust ? { trust: o.trust } : {}),
          onWaiting: (ps) => process.stderr.write(`upswarm: waiting for ${ps.length} publish(es) in flight: ${ps.map((p) => `${p.what} by ${p.identity} since ${p.since}`).join('; ')}\n`),
          onProgress: (p) => bar.update(`deleting: ${p.deleted}/${p.total} blobs, ${formatBytes(p.bytes)}`),
        })
        bar.done()
        printResult(!!o.json, r, () => {
          const range = r.through > 0 ? prunedRange(r.through) : 'no revision'
          if (r.dryRun) return `${r.product}: dry run: would prune ${range} (newest r${r.newest}); would remove ${r.blobs} blobs, ${formatBytes(r.bytes)} (${r.bytes} bytes); ${r.shared} blobs of those revisions stay, used by kept revisions`
          if (r.through === 0) return `${r.product}: nothing to prune (newest r${r.newest})`
          return `${r.product}: pruned ${range} (newest r${r.newest}${r.previous > 0 ? `; ${prunedRange(r.previous)} pruned before` : ''}): removed ${r.blobs} blobs, ${formatBytes(r.bytes)} (${r.bytes} bytes); ` +
            `${r.shared} blobs stay, used by kept revisions${r.recordSeq !== null ? `; recorded in UPSWARM_PRUNE seq ${r.recordSeq}` : ''}`
        })
      } finally {
        await nc.close()
      }
    }))

  program
    .command('alerts')
    .description("the administrators' alerts (R-STATUS-3): files changed by hand and out of date, releases a server parked; with --follow, new ones as they come")
    .option('--product <uuid>', 'only this product')
    .option('--since <hours>', 'from this many hours ago', intArg('--since'), 24)
    .option('--follow', 'keep printing new alerts until interrupted')
    .addOption(natsOption()).addOption(credsOption()).addOption(tlsCaOption())
    .addOption(jsonOption())
    .action(action(async (o) => {
      const [{ connectNats }, { readAlerts }] = await Promise.all([import('../../infra/nats/connect.ts'), import('../../infra/nats/alert-reader.ts')])
      if (o.product !== undefined && !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(String(o.product))) {
        throw new UpswarmError('UPSWARM_E_CONFIG', `--product must be a lowercase UUID (got ${JSON.stringify(o.product)})`)
      }
      const nc = await connectNats(o.nats, 'upswarm-alerts', o)
      const stop = new AbortController()
      if (o.follow) void Promise.race([once(process, 'SIGINT'), once(process, 'SIGTERM')]).then(() => stop.abort())
      try {
        // One JSON object per line (NDJSON) with --json, so programs can follow it.
        const n = await readAlerts(nc, { sinceMs: Date.now() - o.since * 3_600_000, follow: !!o.follow, signal: stop.signal, ...(o.product ? { product: o.product } : {}) }, (a) => {
          if (o.json) process.stdout.write(`${JSON.stringify(a)}\n`)
          else process.stdout.write(`${a.time}  ${a.product.slice(0, 8)}…  ${(a.site ? `${a.from}@${a.site}` : a.from).padEnd(16)} ${describeAlert(a.body)}\n`)
        })
        if (!o.json && !o.follow) process.stderr.write(`${n} alert(s) in the last ${o.since} h\n`)
      } finally {
        await nc.close()
      }
    }))
}

/** A share of the fleet in percent (up to 2 decimals) → basis points. */
function percentArg(value: string): number {
  if (!/^(100(\.0{1,2})?|[0-9]{1,2}(\.[0-9]{1,2})?)$/.test(value)) throw new UpswarmError('UPSWARM_E_CONFIG', `--percent ${JSON.stringify(value)}: expected a share from 0 to 100 with at most 2 decimals (e.g. 5, 12.5, 100)`)
  return Math.round(Number(value) * 100)
}

/** One line for an alert, whatever its type. */
function describeAlert(body: unknown): string {
  const a = (body ?? {}) as Record<string, unknown>
  if (a.type === 'release.parked') return `server ${String(a.server)} parked r${String(a.rev)} (seq ${String(a.seq)}): ${String(a.reason)}`
  if (a.type === 'sync.no-space') return `server ${String(a.server)} waits for disk space to sync r${String(a.rev)} (seq ${String(a.seq)}): ${String(a.reason)}`
  if (a.type === 'health') return `r${String(a.rev)} failed its ${a.phase === 'postInstall' ? 'post-install hook' : 'health check'} at ${String(a.at)}, rolled back to r${String(a.to)} (${String(a.reason)})`
  if (typeof a.path === 'string') return `${a.path}: changed by hand and out of date (at r${String(a.rev)}, r${String(a.targetRev)} installing)`
  return JSON.stringify(body).slice(0, 300)
}
