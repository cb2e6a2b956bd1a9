// `upswarm watch` (R-WATCH, R-ROLLBACK, issue 16 item 1): follows the product's release stream
// and its rollout statements over NATS, and with --auto keeps the working copy where its stage
// lets it be. When a run starts, backs off after a shortfall (the stream tells of a release before
// the servers hold it) and holds after a rollback is the auto-update statechart's to decide — the
// same machine the sharing daemon runs (machines/auto-update.machine.ts), here with the updater's
// update-run statechart as its child. So no retry loop or timer lives outside a machine (issue 12),
// and live inspection shows the watch, its runs and their per-file actors as one tree.
import { createActor, fromPromise, waitFor } from 'xstate'
import type { NatsConnection } from '@nats-io/transport-node'
import { autoUpdateMachine, type AutoUpdateRequest, type OpenedRun, type RunEnd, type RunOutcome } from '../../machines/auto-update.machine.ts'
import { inspection } from '../../infra/inspect/nats-inspector.ts'
import { UpswarmError, errorMessage, isUpswarmError } from '../../infra/errors.ts'
import { jetStreamAlertSink } from '../../infra/nats/alert-sink.ts'
import { decodeTrusted } from '../../infra/release/release-trust.ts'
import { followReleases } from '../../infra/release/release-log.ts'
import { RolloutView } from '../../infra/formats/rollout-view.ts'
import { followRollouts, readRollouts } from '../../infra/formats/rollout-stream.ts'
import { identityKeyOf } from '../../infra/nats/identity.ts'
import { WorkingCopy } from '../../infra/store/working-copy/working-copy.ts'
import type { ReleaseSource } from '../../infra/release/source.ts'
import { openUpdate, type UpdateResult } from './index.ts'
import type { InstallHooks } from '../../machines/update-run.machine.ts'

/** What a watch tells whoever runs it (the CLI prints each). */
export type WatchEvent =
  | { type: 'release.available'; rev: number; current: number }
  | { type: 'update.held'; rev: number; newest: number }
  | { type: 'update.done'; result: UpdateResult }
  /** A run fell short of the revision wanted (the servers do not hold it yet): the statechart backs off and tries again. */
  | { type: 'update.short'; result: UpdateResult; wanted: number }
  | { type: 'update.reverted'; rev: number; to: number; error: UpswarmError }
  | { type: 'update.failed'; error: unknown }
  | { type: 'ignored'; what: string; reason: string }
  /** A rollout statement new to this client, and the revision its stage now allows. */
  | { type: 'rollout.statement'; seq: number; rev: number; target: number | undefined }

export interface WatchOptions {
  dir: string
  nc: NatsConnection
  /** Where the runs fetch from (the CLI gives the servers through the proxy). */
  source: ReleaseSource
  auto: boolean
  ring?: string
  threads?: number
  hooks?: InstallHooks
  report(e: WatchEvent): void
}

export interface Watch {
  /** Ends when the release stream's follower ends (the connection closed) or `stop` was called. */
  closed: Promise<void>
  /** Stops following; a run in progress finishes first (an update is never cut off half-way). */
  stop(): Promise<void>
}

export async function watch(o: WatchOptions): Promise<Watch> {
  const { dir, nc } = o
  let wc = await WorkingCopy.open(dir)
  const product = wc.config.product
  const stage = new RolloutView(product, { key: identityKeyOf(nc) ?? wc.config.clientId, ...(o.ring ? { ring: o.ring } : {}) })
  /** Revisions announced on the stream, verified. */
  const known = new Set<number>()
  let opened: Awaited<ReturnType<typeof openUpdate>> | undefined

  const actor = createActor(autoUpdateMachine.provide({
    actors: {
      openRun: fromPromise<OpenedRun, { request: AutoUpdateRequest; id: number }>(async ({ input }) => {
        opened = await openUpdate(dir, {
          source: o.source, alerts: jetStreamAlertSink(nc), ...(o.threads ? { threads: o.threads } : {}),
          ...(input.request.rev !== undefined ? { rev: input.request.rev } : {}), ...(o.hooks ? { hooks: o.hooks } : {}),
        })
        return { logic: opened.logic, input: opened.input }
      }),
      closeRun: fromPromise<RunOutcome, { request: AutoUpdateRequest; id: number; end: RunEnd }>(async ({ input }) => {
        const run = opened!
        opened = undefined
        if ('error' in input.end) {
          await run.abandon()
          throw input.end.error
        }
        let outcome: Omit<RunOutcome, 'to' | 'hold'>
        try {
          outcome = { report: await run.finish(input.end.output as never) }
        } catch (err) {
          // Back on the previous revision and held there (issue 16 item 2): the machine holds, not retries.
          if (!isUpswarmError(err, 'UPSWARM_E_HEALTH')) throw err
          outcome = { reverted: { rev: Number(err.details?.rev ?? 0), error: err } }
        }
        wc = await WorkingCopy.open(dir)
        stageChanged()
        return { to: wc.state.current, hold: wc.state.hold, ...outcome }
      }),
    },
  }), { input: { auto: o.auto, needsHolders: false, current: wc.state.current, hold: wc.state.hold }, ...inspection() })
  actor.on('update.held', (e) => o.report({ type: 'update.held', rev: e.rev, newest: e.newest }))
  actor.on('run.done', (e) => {
    const result = e.outcome.report as UpdateResult
    const { staged, announced } = actor.getSnapshot().context
    // An automatic run that did not reach where the client should be is retried, not done.
    const wanted = staged ?? announced
    const short = e.id === 0 && (staged !== undefined ? result.to !== staged : result.to < announced)
    o.report(short ? { type: 'update.short', result, wanted } : { type: 'update.done', result })
  })
  actor.on('run.reverted', (e) => o.report({ type: 'update.reverted', rev: e.rev, to: e.to, error: e.error as UpswarmError }))
  actor.on('run.failed', (e) => o.report({ type: 'update.failed', error: e.error }))
  actor.start()

  /** Tells the machine the revision this client's stage allows, once a rollout governs the product. */
  function stageChanged(): number | undefined {
    const rev = stage.target([...known, ...Object.keys(wc.state.record).map(Number)], wc.state.current)
    if (rev !== undefined) actor.send({ type: 'rollout.target', rev })
    return rev
  }
  const accept = (text: string, where: string): void => {
    if (!wc.trust.root) return
    try {
      const statement = stage.accept(text, wc.trust.root, wc.state.record, where)
      if (statement) o.report({ type: 'rollout.statement', seq: statement.seq, rev: statement.rev, target: stageChanged() })
    } catch (err) {
      o.report({ type: 'ignored', what: 'rollout statement', reason: errorMessage(err) })
    }
  }

  // The rollout first: a release announced before its statements are read would be taken whatever the stage.
  const statements = followRollouts(nc, product, (text, seq) => accept(text, `rollout statement at seq ${seq}`))
  await nc.flush()
  if (wc.trust.root) {
    const scan = await readRollouts(nc, product, wc.trust.root)
    for (const skipped of scan.skipped) o.report({ type: 'ignored', what: `rollout statement at seq ${skipped.streamSeq}`, reason: skipped.reason })
    for (const st of scan.statements) accept(st.text, `rollout statement at seq ${st.streamSeq}`)
  }
  const follow = await followReleases(nc, product, (bytes, seq) => {
    let rev: number
    try {
      // The copy's keys as of now: a root it learnt since start counts (issue 10 item 7).
      rev = decodeTrusted(bytes, wc.releaseKeys(), `release stream seq ${seq}`).release.manifest.rev
    } catch (err) {
      o.report({ type: 'ignored', what: `release message ${seq}`, reason: errorMessage(err) })
      return
    }
    known.add(rev)
    if (rev > wc.state.current) o.report({ type: 'release.available', rev, current: wc.state.current })
    stageChanged()
    actor.send({ type: 'release.announced', rev })
  })

  let stopped: Promise<void> | undefined
  const stop = (): Promise<void> => (stopped ??= (async () => {
    statements.unsubscribe()
    await follow.stop()
    actor.send({ type: 'stop' })
    await waitFor(actor, (s) => s.status !== 'active', { timeout: Infinity })
  })())
  return { closed: follow.closed.then(() => {}), stop }
}
