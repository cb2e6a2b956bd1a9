// Issue 12 item 3 on a real cluster: `upswarm update --inspect` of a working copy publishes its
// actors' inspection on upswarm.inspect.updater.<client>, which the operator reads on
// upswarm.inspect.>; the update-run actor's states arrive in order, every message has the shape
// of @statelyai/inspect's events.
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import type { StatelyActorEvent, StatelyInspectionEvent } from '@statelyai/inspect'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startInspectViewer } from '../../actors/inspector/index.ts'
import type { ActorView } from '../../infra/inspect/board.ts'
import { INSPECT_MAX_PER_SECOND } from '../../infra/inspect/nats-inspector.ts'
import { checkStatelyInspectionEvent } from '../../infra/inspect/stately-events.ts'
import { isInspectionSummary, type InspectionSummary } from '../../infra/inspect/summary.ts'
import { INSPECT_SUBJECTS, inspectSubject } from '../../infra/nats/names.ts'
import { CLI, cli, updateFixture, type UpdateFixture } from '../helpers/inspect-fixture.ts'
import { newProduct } from '../helpers/cluster.ts'
import { randomContent, writeTree } from '../helpers/trees.ts'

describe('inspect over NATS', { timeout: 120_000 }, () => {
  let fx: UpdateFixture

  beforeAll(async () => {
    fx = await updateFixture('upswarm-inspect-nats-')
  }, 120_000)
  afterAll(async () => fx?.close())

  it('inspect — the viewer takes inspection events and keeps each process\'s summary, skips anything else on upswarm.inspect.> saying which subject and field, and serves the board at /state', async () => {
    const lines: string[] = []
    const viewer = await startInspectViewer({ nc: fx.admin, port: 0, log: (l) => lines.push(l) })
    try {
      const good = { type: '@xstate.actor', sessionId: 'x:0', rootId: 'x:0', name: 'serverSync', definition: '{"id":"serverSync","states":{"idle":{}}}', snapshot: { status: 'active', value: 'idle' }, id: 'x:0.1', createdAt: '1', _version: '0.7.2' }
      fx.admin.publish(inspectSubject('repo-server', 's9'), 'not json')
      fx.admin.publish(inspectSubject('proxy', 'p1'), JSON.stringify({ ...good, snapshot: 'idle' }))
      fx.admin.publish('upswarm.inspect.nobody.x', JSON.stringify(good))
      fx.admin.publish(inspectSubject('repo-server', 's9'), JSON.stringify(good))
      const summary = { type: 'upswarm.inspect.summary', createdAt: '2', budget: 50, taken: 900, sent: 120, droppedEvents: 700, coalesced: 80, droppedActors: 0, droppedWithActors: 0, discardedAtClose: 0, waiting: 0, busiestSecond: 50, meanPerSecond: 40 }
      fx.admin.publish(inspectSubject('proxy', 'p1'), JSON.stringify(summary))
      await fx.admin.flush()
      // The page's own read of the board, over HTTP, once the last message is in.
      const board = async () => (await (await fetch(`${viewer.url}state`)).json()) as { actors: ActorView[]; summaries: Record<string, unknown>; counts: { taken: number; refused: number } }
      await expect.poll(async () => (await board()).counts, { timeout: 10_000 }).toEqual({ taken: 1, summaries: 1, refused: 3 })
      expect((await board()).summaries).toEqual({ 'proxy.p1': summary })
      expect((await board()).actors).toMatchObject([{ process: 'repo-server.s9', name: 'serverSync', value: 'idle', trail: ['idle'] }])
      expect(lines).toEqual([
        expect.stringMatching(/^skipped a message on upswarm\.inspect\.repo-server\.s9: not JSON/),
        'skipped a message on upswarm.inspect.proxy.p1: not an inspection event: snapshot must be an object with a status',
        'skipped a message on upswarm.inspect.nobody.x: not an inspection subject (upswarm.inspect.<role>.<id>)',
      ])
      const page = await fetch(viewer.url)
      expect(page.headers.get('content-type')).toContain('text/html')
      expect(await page.text()).toContain('<script src="page.js">')
      expect((await fetch(`${viewer.url}nope`)).status).toBe(404)
    } finally {
      await viewer.close()
    }
  })

  it('inspect — an update with --inspect publishes the update-run actor going idle → checking → planning → downloading → applying → retaining → done', async () => {
    const got: { subject: string; m: StatelyInspectionEvent }[] = []
    const malformed: string[] = []
    let runSession: string | undefined
    let finished!: () => void
    const runDone = new Promise<void>((resolve) => { finished = resolve })
    const summaries: InspectionSummary[] = []
    let runEnded = false
    let summarized!: () => void
    // The summary the CLI sends as it closes its inspection, after everything else.
    const lastSummary = new Promise<void>((resolve) => { summarized = resolve })
    const sub = fx.admin.subscribe(INSPECT_SUBJECTS, {
      callback: (_e, msg) => {
        const parsed = msg.json()
        if (isInspectionSummary(parsed)) {
          summaries.push(parsed)
          if (runEnded) summarized()
          return
        }
        const checked = checkStatelyInspectionEvent(parsed)
        if (!checked.ok) return void malformed.push(`${msg.subject}: ${checked.reason}`)
        const m = checked.event
        got.push({ subject: msg.subject, m })
        if (m.type === '@xstate.actor' && m.name === 'updateRun') runSession = m.sessionId
        if (m.type === '@xstate.snapshot' && m.sessionId === runSession && m.snapshot.status === 'done') {
          runEnded = true
          finished()
        }
      },
    })
    await fx.admin.flush()
    const r = await fx.update()
    expect(r.code, r.stderr).toBe(0)
    expect(JSON.parse(r.stdout)).toMatchObject({ from: 1, to: 2 })
    // Bounded wait on the message itself: the CLI drained its inspector before it closed NATS.
    await Promise.race([runDone, new Promise((_, reject) => setTimeout(() => reject(new Error(`no final update-run snapshot; got ${got.length} messages`)), 15_000))])
    await Promise.race([lastSummary, new Promise((_, reject) => setTimeout(() => reject(new Error(`no inspection summary after the run ended; got ${summaries.length} before`)), 15_000))])
    sub.unsubscribe()

    expect(malformed).toEqual([])
    // Everything on the client's own subject (its identity's permissions allow no other).
    expect(new Set(got.map((g) => g.subject))).toEqual(new Set([inspectSubject('updater', fx.clientName)]))
    const run = got.map((g) => g.m).filter((m) => m.sessionId === runSession)
    const actor = run[0]!
    expect(actor.type).toBe('@xstate.actor')
    expect(actor.type === '@xstate.actor' && JSON.parse(actor.definition!)).toMatchObject({ id: 'updateRun', initial: 'idle' })
    const values = run.flatMap((m) => (m.type === '@xstate.event' ? [] : [(m.snapshot as { value?: unknown }).value]))
    expect(values.filter((v, i) => v !== values[i - 1])).toEqual(['idle', 'checking', 'planning', 'downloading', 'applying', 'retaining', 'done'])
    expect(run.some((m) => m.type === '@xstate.event' && m.event.type === 'run.start')).toBe(true)
    // The per-file actors of the same process are inspected too, as the update run's children
    // in its tree, and so are their own children (a file's download).
    const fileActors = got.map((g) => g.m).filter((m): m is StatelyActorEvent => m.type === '@xstate.actor' && m.name === 'fileStatus')
    const paths = fileActors.map((f) => (f.snapshot as { context?: { path?: string } }).context?.path)
    expect(paths).toEqual(expect.arrayContaining(['lib/f0.bin', 'lib/f3.bin', 'new/n.txt', 'conf/app.ini']))
    for (const f of fileActors) expect(f).toMatchObject({ parentId: runSession, rootId: actor.rootId })
    const fileSessions = new Set(fileActors.map((f) => f.sessionId))
    const downloads = got.map((g) => g.m).filter((m) => m.type === '@xstate.actor' && m.parentId !== undefined && fileSessions.has(m.parentId))
    expect(downloads.length).toBeGreaterThan(0)
    for (const d of downloads) expect(d.rootId).toBe(actor.rootId)
    // The only root is the run itself.
    expect(got.filter((g) => g.m.type === '@xstate.actor' && g.m.sessionId === g.m.rootId).map((g) => (g.m as { name: string }).name)).toEqual(['updateRun'])
    // The process's last summary counts what it sent: the messages seen here and its summaries.
    const last = summaries.at(-1)!
    expect(last).toMatchObject({ budget: INSPECT_MAX_PER_SECOND, sent: got.length + summaries.length, waiting: 0 })
    expect(last.busiestSecond).toBeLessThanOrEqual(INSPECT_MAX_PER_SECOND)
    // Under the budget's pressure actors were coalesced, never dropped: every one of them was announced.
    expect(last).toMatchObject({ droppedActors: 0, discardedAtClose: 0 })
    process.stdout.write(`inspect: ${got.length} inspection messages for one update of 4 changed files, ${run.length} of the update run; summary ${JSON.stringify(last)}\n`)
  })

  /** Everything published on one process's inspection subject until `until` says so, as events and summaries. */
  function follow(subject: string, until: (events: StatelyInspectionEvent[], summaries: InspectionSummary[]) => boolean): {
    events: StatelyInspectionEvent[]; summaries: InspectionSummary[]; malformed: string[]; done: Promise<void>; stop(): void
  } {
    const events: StatelyInspectionEvent[] = []
    const summaries: InspectionSummary[] = []
    const malformed: string[] = []
    let resolve!: () => void
    const done = new Promise<void>((r) => { resolve = r })
    const sub = fx.admin.subscribe(subject, {
      callback: (_e, msg) => {
        const parsed: unknown = msg.json()
        if (isInspectionSummary(parsed)) summaries.push(parsed)
        else {
          const checked = checkStatelyInspectionEvent(parsed)
          if (checked.ok) events.push(checked.event)
          else malformed.push(checked.reason)
        }
        if (until(events, summaries)) resolve()
      },
    })
    return { events, summaries, malformed, done, stop: () => sub.unsubscribe() }
  }

  const within = (p: Promise<void>, what: string): Promise<void> =>
    Promise.race([p, new Promise<void>((_, reject) => setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), 30_000))])

  const topState = (v: unknown): unknown => (typeof v === 'object' && v !== null ? Object.keys(v)[0] : v)

  /** The distinct top-level states of the machine `name`, in the order its snapshots arrived. */
  function statesOf(events: StatelyInspectionEvent[], name: string): unknown[] {
    const actor = events.find((m): m is StatelyActorEvent => m.type === '@xstate.actor' && m.name === name)
    if (!actor) return []
    const values = events.filter((m) => m.sessionId === actor.sessionId && m.type !== '@xstate.event')
      .map((m) => topState((m as { snapshot: { value?: unknown } }).snapshot.value))
    return values.filter((v, i) => v !== values[i - 1])
  }

  it('inspect — publish --inspect publishes the publish actor going through its steps to done on upswarm.inspect.publisher.<identity>, then its summary', async () => {
    const name = 'inspect-publisher'
    const creds = await fx.authority.issue({ kind: 'publisher', name })
    const env = { ...fx.adminEnv, UPSWARM_CREDS: creds.file }
    const key = join(fx.dir, 'pub.key')
    expect((await cli(env, 'keygen', '--out', key, '--json')).code).toBe(0)
    const src = join(fx.dir, 'pub-src')
    await writeTree(src, { 'a.txt': 'a\n', 'lib/b.bin': randomContent(20_000) })
    const seen = follow(inspectSubject('publisher', name), (_e, s) => s.length > 0 && s.at(-1)!.waiting === 0 && _e.some((m) => m.type === '@xstate.snapshot' && m.snapshot.status === 'done'))
    await fx.admin.flush()
    try {
      const r = await cli(env, 'publish', src, '--product', newProduct(), '--key', key, '--no-feed', '--inspect', '--json')
      expect(r.code, r.stderr).toBe(0)
      await within(seen.done, 'the publish actor\'s final snapshot and the summary')
    } finally {
      seen.stop()
    }
    expect(seen.malformed).toEqual([])
    const states = statesOf(seen.events, 'publish')
    expect(states[0]).toBe('idle')
    expect(states.at(-1)).toBe('done')
    expect(states).toEqual(expect.arrayContaining(['claiming', 'scanning', 'uploading', 'signing', 'appending']))
    expect(seen.summaries.at(-1)!.busiestSecond).toBeLessThanOrEqual(INSPECT_MAX_PER_SECOND)
  })

  it('inspect — tracker --inspect publishes the tracker actor opening its doors and listening, then stopping on SIGTERM, on upswarm.inspect.tracker.<identity>', async () => {
    const name = 'inspect-tracker'
    const creds = await fx.authority.issue({ kind: 'tracker', name })
    const env = { ...fx.adminEnv, UPSWARM_CREDS: creds.file, UPSWARM_INSPECT: '1' }
    const subject = inspectSubject('tracker', name)
    const listening = follow(subject, (e) => statesOf(e, 'trackerServer').includes('listening'))
    const all = follow(subject, (e, s) => s.length > 0 && e.some((m) => m.type === '@xstate.snapshot' && m.snapshot.status === 'done'))
    await fx.admin.flush()
    const child = spawn(process.execPath, [CLI, 'tracker', '--id', name, '--http-port', '0', '--udp-port', '0'], { env, stdio: ['ignore', 'pipe', 'pipe'] })
    let stderr = ''
    child.stderr!.on('data', (d: Buffer) => { stderr += d.toString() })
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve))
    try {
      await Promise.race([within(listening.done, 'the tracker actor listening'), exited.then((code) => { throw new Error(`tracker exited (${code}): ${stderr}`) })])
      child.kill('SIGTERM')
      expect(await exited).toBe(0)
      await within(all.done, 'the tracker actor stopping and its summary')
    } finally {
      listening.stop()
      all.stop()
      if (child.exitCode === null) child.kill('SIGKILL')
    }
    expect(all.malformed).toEqual([])
    const states = statesOf(all.events, 'trackerServer')
    expect(states[0]).toBe('openingBucket')
    expect(states).toEqual(expect.arrayContaining(['startingRegistry', 'openingNatsDoor', 'openingHttpDoor', 'openingUdpDoor', 'listening', 'closing']))
    expect(all.events.filter((m) => m.type === '@xstate.actor' && m.name === 'trackerServer')).toHaveLength(1)
    expect(all.summaries.at(-1)!.busiestSecond).toBeLessThanOrEqual(INSPECT_MAX_PER_SECOND)
  })

  it('inspect — rollback --inspect from local history still needs no network for the rollback, and publishes its update-run actor (kind rollback) to done', async () => {
    // After the update above, the working copy is at r2 with r1 in its local history.
    const seen = follow(inspectSubject('updater', fx.clientName), (e, s) => s.length > 0 && statesOf(e, 'updateRun').at(-1) === 'done')
    await fx.admin.flush()
    try {
      const r = await cli(fx.clientEnv, 'rollback', fx.wc, '--rev', '1', '--inspect', '--json')
      expect(r.code, r.stderr).toBe(0)
      expect(JSON.parse(r.stdout)).toMatchObject({ from: 2, to: 1, source: 'local' })
      await within(seen.done, 'the rollback run\'s final snapshot and the summary').catch((err) => { throw new Error(`${err.message}: ${JSON.stringify(seen.summaries)} ${JSON.stringify(statesOf(seen.events, 'updateRun'))} ${seen.events.length} ${r.stderr}`) })
    } finally {
      seen.stop()
    }
    expect(seen.malformed).toEqual([])
    const run = seen.events.find((m): m is StatelyActorEvent => m.type === '@xstate.actor' && m.name === 'updateRun')!
    expect(run.snapshot).toMatchObject({ context: { request: { kind: 'rollback' } } })
    expect(statesOf(seen.events, 'updateRun')).toEqual(expect.arrayContaining(['checking', 'planning', 'applying', 'done']))
  })
})
