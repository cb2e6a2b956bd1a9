// Issue 12 item 4 (a): `upswarm inspect --stately URL` forwards what it reads on upswarm.inspect.>
// through @statelyai/inspect's WebSocket inspector. Here the Stately side is a WebSocket endpoint
// on 127.0.0.1 (a few lines of RFC 6455 over node:http: no internet, no extra package); what
// arrives must be the messages as published, each a StatelyInspectionEvent.
import { createHash } from 'node:crypto'
import { createServer, type Server } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startInspectViewer, type InspectViewer } from '../../actors/inspector/index.ts'
import { checkStatelyInspectionEvent } from '../../infra/inspect/stately-events.ts'
import type { NatsConnection } from '../../infra/nats/connect.ts'
import { inspectSubject } from '../../infra/nats/names.ts'
import { testConnection } from '../helpers/cluster.ts'

/** A WebSocket endpoint that hands every text frame it receives to `onText`. */
function webSocketSink(onText: (text: string) => void): Server {
  const server = createServer((_req, res) => res.writeHead(426).end())
  server.on('upgrade', (req, socket: Socket) => {
    const accept = createHash('sha1').update(`${req.headers['sec-websocket-key']}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64')
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`)
    let buf = Buffer.alloc(0)
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk])
      for (;;) {
        if (buf.length < 2) return
        const opcode = buf[0]! & 0x0f
        let len = buf[1]! & 0x7f
        let at = 2
        if (len === 126) { len = buf.readUInt16BE(2); at = 4 } else if (len === 127) { len = Number(buf.readBigUInt64BE(2)); at = 10 }
        if (buf.length < at + 4 + len) return
        const mask = buf.subarray(at, at + 4)
        const payload = Buffer.from(buf.subarray(at + 4, at + 4 + len).map((b, i) => b ^ mask[i % 4]!))
        buf = buf.subarray(at + 4 + len)
        if (opcode === 1) onText(payload.toString('utf8'))
        if (opcode === 8) socket.end()
      }
    })
  })
  return server
}

describe('inspect — forwarding to the Stately inspector', () => {
  let nc: NatsConnection
  let sink: Server
  let viewer: InspectViewer
  const received: string[] = []
  let arrived!: () => void
  const twoArrived = new Promise<void>((resolve) => { arrived = resolve })

  beforeAll(async () => {
    nc = await testConnection('test-inspect-stately')
    sink = webSocketSink((text) => {
      received.push(text)
      if (received.length === 2) arrived()
    })
    await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve))
    const port = (sink.address() as AddressInfo).port
    viewer = await startInspectViewer({ nc, port: 0, statelyUrl: `ws://127.0.0.1:${port}` })
  })
  afterAll(async () => {
    await viewer?.close()
    sink?.closeAllConnections()
    await new Promise((resolve) => sink?.close(resolve))
    await nc?.close()
  })

  it('inspect — --stately forwards every inspection event as published through @statelyai/inspect\'s WebSocket inspector', async () => {
    const base = { sessionId: 'x:0', rootId: 'x:0', createdAt: '1764497329402', _version: '0.7.2' }
    const sent = [
      { ...base, type: '@xstate.actor', id: 'x:0.1', name: 'poolMember', definition: '{"id":"poolMember","states":{"healthy":{}}}', snapshot: { status: 'active', value: 'healthy' } },
      { ...base, type: '@xstate.snapshot', id: 'x:0.2', event: { type: 'heartbeat' }, snapshot: { status: 'active', value: 'healthy', context: { id: 's1' } } },
    ]
    nc.publish(inspectSubject('proxy', 'stately-test'), 'not an inspection event')
    for (const m of sent) nc.publish(inspectSubject('proxy', 'stately-test'), JSON.stringify(m))
    await Promise.race([twoArrived, new Promise((_, reject) => setTimeout(() => reject(new Error(`forwarded: ${received.length} of 2`)), 15_000))])
    const forwarded = received.map((t) => JSON.parse(t) as unknown)
    expect(forwarded).toEqual(sent)
    for (const m of forwarded) expect(checkStatelyInspectionEvent(m)).toMatchObject({ ok: true })
    expect(viewer.counts).toEqual({ taken: 2, summaries: 0, refused: 1 })
  })
})
