// Issue 14 item 2: the bulk port's client connections (infra/http/pinned-https.ts), against TLS
// servers on 127.0.0.1 that answer as the test says: heads and bodies split across reads, a kept
// connection the server let go, answers that break the wire, and exchanges given up.
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { createServer, type Server, type TLSSocket } from 'node:tls'
import { afterEach, describe, expect, it } from 'vitest'
import { selfSignedCert } from '../../infra/auth/tls.ts'
import { fingerprintOf } from '../../infra/http/bulk-wire.ts'
import { HttpsUnreachable, PinnedHttps, PoolClosed, type HttpsRequest } from '../../infra/http/pinned-https.ts'
import { UpswarmError } from '../../infra/errors.ts'

const pair = selfSignedCert('pinned-https test')
const other = selfSignedCert('another server')

/** A TLS server whose every request (one per `\r\n\r\n`) is answered by `answer`; it counts connections. */
async function serverAnswering(answer: (socket: TLSSocket, nth: number) => void | Promise<void>): Promise<{ server: Server; url: URL; connections: () => number; closed: Promise<unknown> }> {
  let connections = 0
  let firstClosed!: (v: unknown) => void
  const closed = new Promise((resolve) => (firstClosed = resolve))
  let nth = 0
  const server = createServer({ cert: pair.cert, key: pair.key }, (socket) => {
    if (connections++ === 0) socket.once('close', firstClosed)
    let head = ''
    socket.on('data', (d: Buffer) => {
      head += d.toString('latin1')
      while (head.includes('\r\n\r\n')) {
        head = head.slice(head.indexOf('\r\n\r\n') + 4)
        void answer(socket, nth++)
      }
    })
    socket.on('error', () => {})
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  servers.push(server)
  return { server, url: new URL(`https://127.0.0.1:${(server.address() as AddressInfo).port}`), connections: () => connections, closed }
}

const servers: Server[] = []
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise((resolve) => s.close(resolve))
})

const pinnedTo = (cert: string) => (peer: { fingerprint256: string }) => (peer.fingerprint256 === fingerprintOf(cert) ? undefined : new Error('not the pinned certificate'))
const get = (into?: Buffer): HttpsRequest => ({ method: 'GET', path: '/x', headers: {}, status: 206, max: 1 << 20, ...(into ? { into } : {}) })
const within = { waitMs: 20_000, timeout: () => new UpswarmError('UPSWARM_E_TIMEOUT', 'took too long') }
const tick = () => new Promise((resolve) => setTimeout(resolve, 5))

describe('pinned-https — the bulk port\'s client connections', () => {
  it('a head and a body split over many reads arrive whole, into the buffer given, over one kept connection', async () => {
    const body = Buffer.from(Array.from({ length: 200_000 }, (_, i) => i % 251))
    const head = Buffer.from(`HTTP/1.1 206 Partial Content\r\ncontent-length: ${body.length}\r\n\r\n`)
    const { url, connections } = await serverAnswering(async (socket) => {
      // The head a few bytes at a time, then the body in uneven parts, each its own TLS record.
      for (let i = 0; i < head.length; i += 7) {
        socket.write(head.subarray(i, i + 7))
        await tick()
      }
      for (let i = 0; i < body.length; i += 70_001) socket.write(body.subarray(i, i + 70_001))
    })
    const https = new PinnedHttps(url, pair.cert, pinnedTo(pair.cert), 2)
    try {
      for (let round = 0; round < 3; round++) {
        const into = Buffer.alloc(1 << 20)
        const a = await https.exchange(get(into), within)
        expect(a.status).toBe(206)
        expect(a.body.equals(body)).toBe(true)
        expect(a.body.buffer).toBe(into.buffer)
      }
      expect(connections()).toBe(1)
    } finally {
      https.close()
    }
  })

  it('a kept connection the server let go is replaced without an error; an error answer comes back with its status and body', async () => {
    const { url, connections, closed } = await serverAnswering((socket, nth) => {
      const body = nth === 1 ? '{"code":"UPSWARM_E_NOT_FOUND","message":"no such blob"}' : 'ok'
      socket.write(`HTTP/1.1 ${nth === 1 ? 404 : 206} X\r\ncontent-length: ${body.length}\r\n\r\n${body}`)
      // The first connection is closed once it has answered, as a server's idle timeout does.
      if (nth === 0) socket.end()
    })
    const https = new PinnedHttps(url, pair.cert, pinnedTo(pair.cert), 1)
    try {
      expect(String((await https.exchange(get(), within)).body)).toBe('ok')
      // Whether the client saw the close before it asks again or only as it asks, it is not an error.
      await closed
      const a = await https.exchange(get(), within)
      expect({ status: a.status, body: String(a.body) }).toEqual({ status: 404, body: '{"code":"UPSWARM_E_NOT_FOUND","message":"no such blob"}' })
      expect(connections()).toBe(2)
    } finally {
      https.close()
    }
  })

  it('answers that break the wire are refused, naming what is wrong: more bytes than the content-length, none, a body above the maximum', async () => {
    const answers = [
      'HTTP/1.1 206 X\r\ncontent-length: 2\r\n\r\nabc',
      'HTTP/1.1 206 X\r\n\r\nabc',
      `HTTP/1.1 206 X\r\ncontent-length: ${(1 << 20) + 1}\r\n\r\n`,
    ]
    const { url } = await serverAnswering((socket, nth) => void socket.write(answers[nth]!))
    const https = new PinnedHttps(url, pair.cert, pinnedTo(pair.cert), 1)
    try {
      await expect(https.exchange(get(), within)).rejects.toMatchObject({ code: 'UPSWARM_E_PEER', message: expect.stringContaining('more bytes than its content-length') })
      await expect(https.exchange(get(), within)).rejects.toMatchObject({ code: 'UPSWARM_E_PEER', message: expect.stringContaining('without a content-length') })
      await expect(https.exchange(get(), within)).rejects.toMatchObject({ code: 'UPSWARM_E_PEER', message: expect.stringContaining(`${(1 << 20) + 1} bytes where at most ${1 << 20}`) })
    } finally {
      https.close()
    }
  })

  it('an exchange that times out or is withdrawn closes its connection and frees its place; another certificate is refused', async () => {
    const { url } = await serverAnswering((socket, nth) => {
      // The first two requests are never answered.
      if (nth >= 2) socket.write('HTTP/1.1 206 X\r\ncontent-length: 2\r\n\r\nok')
    })
    const https = new PinnedHttps(url, pair.cert, pinnedTo(pair.cert), 1)
    try {
      await expect(https.exchange(get(), { waitMs: 100, timeout: within.timeout })).rejects.toMatchObject({ code: 'UPSWARM_E_TIMEOUT' })
      const withdraw = new AbortController()
      const asked = https.exchange(get(), { ...within, signal: withdraw.signal })
      setTimeout(() => withdraw.abort(new Error('no longer needed')), 50)
      await expect(asked).rejects.toThrow('no longer needed')
      // One connection at most: the next exchange gets a new one.
      expect(String((await https.exchange(get(), within)).body)).toBe('ok')
    } finally {
      https.close()
    }
    const wrong = new PinnedHttps(url, other.cert, pinnedTo(other.cert), 1)
    try {
      await expect(wrong.exchange(get(), within)).rejects.toBeInstanceOf(HttpsUnreachable)
    } finally {
      wrong.close()
    }
  })

  it('closing the pool fails the exchanges waiting for a connection at once (PoolClosed), and the one in flight still gets its answer', async () => {
    let answerFirst!: () => void
    const { url } = await serverAnswering((socket, nth) => {
      if (nth === 0) answerFirst = () => void socket.write('HTTP/1.1 206 X\r\ncontent-length: 5\r\n\r\nfirst')
    })
    const https = new PinnedHttps(url, pair.cert, pinnedTo(pair.cert), 1)
    const first = https.exchange(get(), within)
    const second = https.exchange(get(), within)
    https.close()
    await expect(second).rejects.toBeInstanceOf(PoolClosed)
    await expect.poll(() => answerFirst, { timeout: 10_000 }).toBeDefined()
    answerFirst()
    expect(String((await first).body)).toBe('first')
    await expect(https.exchange(get(), within)).rejects.toBeInstanceOf(PoolClosed)
  })
})
