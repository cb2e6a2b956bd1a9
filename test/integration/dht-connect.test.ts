// R-DHT-1: when the tracker is down, peers find each other on the DHT. Peers on one host (here:
// separate processes on a loopback DHT) must connect on the first attempt, both ends live: a
// connection that one end reports and the other never sees is the half-open failure of
// hyperdht 6.33–6.34 (docs/decisions.md, "hyperdht is pinned to 6.32.0").
import { afterEach, describe, expect, it } from 'vitest'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { startLocalDht, type LocalDht } from '../../infra/cluster/dht.ts'
import { topicFor } from '../../infra/swarm/transport.ts'

const PEER = join(import.meta.dirname, '../helpers/dht-peer.ts')

interface Peer { child: ChildProcess; key: Promise<string>; heard: Set<string>; dropped: { peer: string | null; reason: string }[]; lookups: number; changed: () => void }

let dht: LocalDht | undefined
const peers: Peer[] = []
afterEach(async () => {
  for (const p of peers.splice(0)) {
    if (p.child.exitCode === null) {
      const exited = once(p.child, 'exit')
      p.child.kill('SIGTERM')
      await exited
    }
  }
  await dht?.close()
  dht = undefined
})

function startPeer(bootstrap: string, topic: Buffer, onChange: () => void, mode: 'announce' | 'client' = 'announce'): Peer {
  const child = spawn(process.execPath, ['--import', 'tsx', PEER, bootstrap, topic.toString('hex'), ...(mode === 'client' ? ['client'] : [])], { stdio: ['ignore', 'pipe', 'inherit'] })
  const peer: Peer = { child, key: new Promise(() => {}), heard: new Set(), dropped: [], lookups: 0, changed: onChange }
  peer.key = new Promise((resolve) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const e = JSON.parse(line) as { event: string; key?: string; from?: string; peer?: string | null; reason?: string }
      if (e.event === 'ready') resolve(e.key!)
      if (e.event === 'hello') peer.heard.add(e.from!)
      if (e.event === 'looked-up') peer.lookups++
      if (e.event === 'dropped' && e.reason !== 'duplicate connection') peer.dropped.push({ peer: e.peer ?? null, reason: e.reason! })
      peer.changed()
    })
  })
  peers.push(peer)
  return peer
}

describe('DHT connections between processes', { timeout: 90_000 }, () => {
  it('swarm — three peers in separate processes, each announcing and looking up, all hear each other with no half-open connection', async () => {
    dht = await startLocalDht()
    const topic = topicFor(crypto.randomUUID())
    let wake: () => void = () => {}
    const started = [0, 1, 2].map(() => startPeer(dht!.bootstrap, topic, () => wake()))
    const keys = await Promise.all(started.map((p) => p.key))
    const meshed = (): boolean => started.every((p, i) => keys.every((k, j) => i === j || p.heard.has(k)))
    // Bounded: a full mesh on loopback takes well under a second; a half-open connection
    // would only clear after the 5 s first-bytes guard and a retry.
    const deadline = Date.now() + 60_000
    while (!meshed() && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        wake = resolve
        setTimeout(resolve, 1_000).unref()
      })
    }
    expect(started.map((p) => [...p.heard].sort())).toEqual(keys.map((_, i) => keys.filter((__, j) => j !== i).sort()))
    expect(started.flatMap((p) => p.dropped)).toEqual([])
  })

  it('swarm — a peer that joined earlier is still announced after its own lookups again: one that only looks up, joining later, finds it (R-DHT-1)', async () => {
    dht = await startLocalDht()
    const topic = topicFor(crypto.randomUUID())
    let wake: () => void = () => {}
    const changed = (): void => wake()
    const until = async (what: string, done: () => boolean, ms: number): Promise<void> => {
      const deadline = Date.now() + ms
      while (!done()) {
        if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`)
        await new Promise<void>((resolve) => {
          wake = resolve
          setTimeout(resolve, 500).unref()
        })
      }
    }
    const early = startPeer(dht.bootstrap, topic, changed)
    const earlyKey = await early.key
    // Its first lookup again (2 s after the join) once took it out of server mode: unannounced.
    await until('the early peer looked the topic up again', () => early.lookups >= 1, 30_000)
    const late = startPeer(dht.bootstrap, topic, changed, 'client')
    await late.key
    // The late peer announces nothing, so only its own lookups can find the early one; they run
    // at its join and 2 and 7 s later.
    await until('the late peer heard the early one', () => late.heard.has(earlyKey), 20_000)
    expect(late.dropped).toEqual([])
  })
})
