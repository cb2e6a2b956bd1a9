// Issue 14 item 2: the bulk port's own HTTP/1.1 wire (actors/repo-server/bulk.ts), spoken over raw
// TLS connections on 127.0.0.1 to a port whose ranges and units come from stubs: ranges answered
// in order over one kept-open connection (pipelined too) from the buffer they were read into; a
// request the port cannot read refused with a JSON error and the connection closed; a client that
// hangs up before its turn withdraws its range; 100-continue; and garbage never crashes the port.
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { connect, type TLSSocket } from 'node:tls'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startBulkPort, MAX_HEAD, type BulkPort, type ServeRange } from '../../actors/repo-server/bulk.ts'
import { UpswarmError } from '../../infra/errors.ts'
import { BLOB_PATH, UNITS_PATH } from '../../infra/http/bulk-wire.ts'
import { tempDir } from '../helpers/cluster.ts'

const MiB = 1024 * 1024
const SHA = 'ab'.repeat(32)

/** The byte at `i` of the stub blob. */
const byteAt = (i: number): number => (i * 7 + (i >> 12)) & 0xff
const blob = (offset: number, length: number): Buffer => Buffer.from(Array.from({ length }, (_, i) => byteAt(offset + i)))

interface Answer { status: number; headers: Map<string, string>; body: Buffer }

/** A raw TLS connection to the port: what it sends back, parsed into answers (interim 1xx ones included). */
class Raw {
  readonly socket: TLSSocket
  readonly answers: Answer[] = []
  readonly closed: Promise<unknown>
  private buf = Buffer.alloc(0)
  private wake: (() => void) | undefined

  constructor(port: number) {
    this.socket = connect({ host: '127.0.0.1', port, rejectUnauthorized: false })
    this.socket.on('error', () => {})
    this.closed = once(this.socket, 'close')
    this.socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d])
      for (;;) {
        const end = this.buf.indexOf('\r\n\r\n')
        if (end < 0) break
        const lines = this.buf.toString('latin1', 0, end).split('\r\n')
        const headers = new Map(lines.slice(1).map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]))
        const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(lines[0]!)![1])
        const length = status < 200 ? 0 : Number(headers.get('content-length'))
        if (this.buf.length < end + 4 + length) break
        this.answers.push({ status, headers, body: Buffer.from(this.buf.subarray(end + 4, end + 4 + length)) })
        this.buf = this.buf.subarray(end + 4 + length)
      }
      this.wake?.()
    })
    this.socket.on('close', () => this.wake?.())
  }

  async ready(): Promise<this> {
    await once(this.socket, 'secureConnect')
    return this
  }

  /** Waits until `n` answers have come (or the connection closed): those answers. */
  async until(n: number): Promise<Answer[]> {
    while (this.answers.length < n && !this.socket.destroyed && this.socket.readable) await new Promise<void>((resolve) => (this.wake = resolve))
    return this.answers
  }
}

describe('the bulk port\'s wire', () => {
  let dir: { path: string; cleanup: () => Promise<void> }
  let port: BulkPort
  let portNumber: number
  let ticket: string
  /** Ranges served, and what each was given to read into. */
  const served: { offset: number; length: number; into?: Buffer }[] = []
  /** When set, the stub's next range waits for its turn until its client hangs up. */
  let holdNext: ((signal: AbortSignal) => void) | undefined
  /** When set, the stub returns a buffer of its own rather than the one it was given. */
  let ownBuffer = false
  const serve: ServeRange = async ({ offset, length, signal, into }) => {
    served.push({ offset, length, ...(into ? { into } : {}) })
    const hold = holdNext
    holdNext = undefined
    if (hold && signal) {
      hold(signal)
      await once(signal, 'abort')
      throw new UpswarmError('UPSWARM_E_CANCELLED', 'withdrawn')
    }
    if (ownBuffer || !into) return blob(offset, length)
    blob(offset, length).copy(into)
    return into.subarray(0, length)
  }
  const auth = (): string => `authorization: Bearer ${ticket}\r\n`
  const rangeRequest = (offset: number, length: number, extra = ''): string =>
    `GET ${BLOB_PATH}${SHA} HTTP/1.1\r\nhost: bulk\r\n${auth()}range: bytes=${offset}-${offset + length - 1}\r\nx-upswarm-wait-ms: 10000\r\n${extra}\r\n`
  const open = (): Promise<Raw> => new Raw(portNumber).ready()

  beforeAll(async () => {
    dir = await tempDir()
    port = await startBulkPort({
      id: 'wire', dataDir: dir.path, host: '127.0.0.1', port: 0, maxRange: 4 * MiB, serve,
      serveUnits: async ({ hashes }) => Buffer.from(`units:${hashes.join(',')}`),
      log: () => {},
    })
    const offer = port.offer()
    portNumber = Number(new URL(offer.url).port)
    ticket = offer.ticket
  })
  afterAll(async () => {
    await port?.close()
    await dir?.cleanup()
  })

  it('ranges sent together on one connection are answered in order, each read into a buffer of the port\'s own, and the connection stays open', async () => {
    served.length = 0
    const raw = await open()
    // Three requests in one write: a piece, a range over a piece (a buffer of its own), a small one.
    raw.socket.write(rangeRequest(0, MiB) + rangeRequest(5 * MiB, 2 * MiB + 3) + rangeRequest(100, 10))
    const got = await raw.until(3)
    expect(got.map((a) => a.status)).toEqual([206, 206, 206])
    expect(got[0]!.body.equals(blob(0, MiB))).toBe(true)
    expect(got[1]!.body.equals(blob(5 * MiB, 2 * MiB + 3))).toBe(true)
    expect(got[2]!.body.equals(blob(100, 10))).toBe(true)
    expect(got.map((a) => a.headers.get('content-range'))).toEqual([`bytes 0-${MiB - 1}/*`, `bytes ${5 * MiB}-${7 * MiB + 2}/*`, 'bytes 100-109/*'])
    expect(served.map((s) => s.into && s.into.length >= s.length)).toEqual([true, true, true])
    // A stub that answers from a buffer of its own is sent the same way.
    ownBuffer = true
    try {
      raw.socket.write(rangeRequest(3, 70_000))
      const [, , , fourth] = await raw.until(4)
      expect(fourth!.status).toBe(206)
      expect(fourth!.body.equals(blob(3, 70_000))).toBe(true)
    } finally {
      ownBuffer = false
    }
    expect(raw.socket.destroyed).toBe(false)
    raw.socket.destroy()
  })

  it('an error answer to a request without a body keeps the connection: 401, 404 and 400, then the range is served', async () => {
    const raw = await open()
    raw.socket.write(`GET ${BLOB_PATH}${SHA} HTTP/1.1\r\nrange: bytes=0-9\r\n\r\n`)
    raw.socket.write(`GET /etc/passwd HTTP/1.1\r\n${auth()}\r\n`)
    raw.socket.write(`GET ${BLOB_PATH}${SHA} HTTP/1.1\r\n${auth()}range: bytes=0-${5 * MiB}\r\n\r\n`)
    raw.socket.write(rangeRequest(0, 10))
    const got = await raw.until(4)
    expect(got.map((a) => [a.status, a.status === 206 ? '' : JSON.parse(a.body.toString()).code])).toEqual([
      [401, 'UPSWARM_E_AUTH'], [404, 'UPSWARM_E_NOT_FOUND'], [400, 'UPSWARM_E_BAD_REQUEST'], [206, ''],
    ])
    expect(got[3]!.body.equals(blob(0, 10))).toBe(true)
    raw.socket.destroy()
  })

  it('a request the port cannot read is refused with a JSON error naming it, and the connection closes; nothing is served', async () => {
    const cases: [string, string | Buffer, number][] = [
      ['not HTTP', 'HELLO THERE\r\n\r\n', 400],
      ['HTTP/2', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 400],
      ['a header line without a colon', `GET ${BLOB_PATH}${SHA} HTTP/1.1\r\n${auth()}no colon here\r\n\r\n`, 400],
      ['a bare LF in a header', `GET ${BLOB_PATH}${SHA} HTTP/1.1\r\n${auth()}range: bytes=0-9\nx: y\r\n\r\n`, 400],
      ['a control character in a value', `GET ${BLOB_PATH}${SHA} HTTP/1.1\r\n${auth()}range: bytes=0-9\x01\r\n\r\n`, 400],
      ['a folded header', `GET ${BLOB_PATH}${SHA} HTTP/1.1\r\n${auth()}range: bytes=0-9\r\n  x\r\n\r\n`, 400],
      ['a chunked body', `POST ${UNITS_PATH} HTTP/1.1\r\n${auth()}transfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`, 400],
      ['two content-lengths', `POST ${UNITS_PATH} HTTP/1.1\r\n${auth()}content-length: 2\r\ncontent-length: 3\r\n\r\n{}`, 400],
      ['a content-length that is no number', `POST ${UNITS_PATH} HTTP/1.1\r\n${auth()}content-length: -1\r\n\r\n`, 400],
      ['an expectation it cannot meet', `POST ${UNITS_PATH} HTTP/1.1\r\n${auth()}expect: teapot\r\ncontent-length: 2\r\n\r\n{}`, 417],
      ['a head past its size', `GET ${BLOB_PATH}${SHA} HTTP/1.1\r\n${auth()}x-pad: ${'a'.repeat(MAX_HEAD)}\r\n\r\n`, 431],
      ['a head past its size, never ended', `GET ${BLOB_PATH}${SHA} HTTP/1.1\r\n${'x-pad: a\r\n'.repeat(MAX_HEAD / 8)}`, 431],
      ['too many header lines', `GET ${BLOB_PATH}${SHA} HTTP/1.1\r\n${'x: a\r\n'.repeat(200)}\r\n`, 431],
    ]
    served.length = 0
    for (const [what, request, status] of cases) {
      const raw = await open()
      raw.socket.write(request)
      const [answer] = await raw.until(1)
      await raw.closed
      const body = JSON.parse(answer!.body.toString()) as { code: string; message: string }
      expect({ what, status: answer!.status, code: body.code, close: answer!.headers.get('connection') }).toEqual({ what, status, code: 'UPSWARM_E_BAD_REQUEST', close: 'close' })
      expect(body.message.length).toBeGreaterThan(10)
      expect(raw.answers).toHaveLength(1)
    }
    expect(served).toEqual([])
  })

  it('a client that hangs up before its turn withdraws its range: the port drops it unsent', async () => {
    const raw = await open()
    const held = new Promise<AbortSignal>((resolve) => (holdNext = resolve))
    raw.socket.write(rangeRequest(0, MiB))
    const signal = await held
    expect(signal.aborted).toBe(false)
    raw.socket.destroy()
    await once(signal, 'abort')
    expect(raw.answers).toEqual([])
    // The port goes on serving others.
    const next = await open()
    next.socket.write(rangeRequest(0, 10))
    expect((await next.until(1))[0]!.body.equals(blob(0, 10))).toBe(true)
    next.socket.destroy()
  })

  it('a units request with `expect: 100-continue` is told to go on, then answered; its body may come in parts', async () => {
    const raw = await open()
    const payload = JSON.stringify({ hashes: [SHA, 'cd'.repeat(32)] })
    raw.socket.write(`POST ${UNITS_PATH} HTTP/1.1\r\n${auth()}content-type: application/json\r\nexpect: 100-continue\r\ncontent-length: ${payload.length}\r\n\r\n`)
    const [interim] = await raw.until(1)
    expect(interim!.status).toBe(100)
    raw.socket.write(payload.slice(0, 10))
    raw.socket.write(payload.slice(10))
    const [, answer] = await raw.until(2)
    expect(answer!.status).toBe(200)
    expect(answer!.body.toString()).toBe(`units:${SHA},${'cd'.repeat(32)}`)
    raw.socket.destroy()
  })

  it('garbage — random bytes and broken requests — never crashes the port, and every such connection ends', async () => {
    // A fixed seed: a failure can be replayed.
    let seed = 14
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff
      return seed % n
    }
    const good = Buffer.from(rangeRequest(0, 100))
    const inputs: Buffer[] = []
    for (let i = 0; i < 60; i++) inputs.push(randomBytes(1 + rand(3000)))
    for (let i = 0; i < 120; i++) {
      const b = Buffer.from(good)
      for (let k = 0, n = 1 + rand(6); k < n; k++) b[rand(b.length)] = [0, 10, 13, 32, 58, 255, rand(256)][rand(7)]!
      inputs.push(rand(4) === 0 ? b.subarray(0, rand(b.length)) : b)
    }
    served.length = 0
    for (const input of inputs) {
      const raw = await open()
      raw.socket.end(input)
      await raw.closed
      for (const a of raw.answers) expect([206, 400, 401, 404, 417, 431]).toContain(a.status)
    }
    // Whatever it served were ranges a mutation left well-formed.
    for (const s of served) expect(s.length).toBeLessThanOrEqual(4 * MiB)
    const raw = await open()
    raw.socket.write(rangeRequest(7, 77))
    expect((await raw.until(1))[0]!.body.equals(blob(7, 77))).toBe(true)
    raw.socket.destroy()
  })
})
