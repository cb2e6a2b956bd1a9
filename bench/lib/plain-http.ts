// The client-server baseline of the swarm benchmark: a plain node:http file server whose whole
// upload is capped by one token bucket (the same limiter the repository servers use), and a
// client process that downloads a list of files from it, verifying each SHA-256 as it streams.
//
//   node --import tsx bench/lib/plain-http.ts --client LIST.json --out DIR
//     prints READY, waits for a line on stdin, downloads, prints DONE {"ms":…,"bytes":…}
import { createHash } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { Agent, createServer, get, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { dirname, join, normalize } from 'node:path'
import { createInterface } from 'node:readline'
import { pipeline } from 'node:stream/promises'
import { Transform } from 'node:stream'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { readFile } from 'node:fs/promises'
import { TokenBucket } from '../../infra/swarm/token-bucket.ts'

const CHUNK = 64 * 1024

export interface PlainServer {
  url: string
  bytesSent(): number
  close(): Promise<void>
}

/** Serves the files under `root` (GET /path), all responses together capped at `rate` bytes/s (0: none). */
export async function startPlainServer(root: string, rate: number): Promise<PlainServer> {
  const bucket = new TokenBucket(rate)
  let sent = 0
  const server: Server = createServer((req, res) => {
    const rel = normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)).replace(/^(\.\.(\/|$))+/, '')
    const stream = createReadStream(join(root, rel), { highWaterMark: CHUNK })
    stream.once('error', () => {
      if (!res.headersSent) res.writeHead(404).end()
      else res.destroy()
    })
    stream.once('open', async () => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' })
      try {
        for await (const chunk of stream) {
          await bucket.take((chunk as Buffer).length)
          sent += (chunk as Buffer).length
          if (!res.write(chunk)) await new Promise<void>((resolve) => res.once('drain', resolve))
          if (res.destroyed) return
        }
        res.end()
      } catch {
        res.destroy()
      }
    })
  })
  server.keepAliveTimeout = 30_000
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    bytesSent: () => sent,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve())
      server.closeAllConnections()
    }),
  }
}

export interface FileToFetch {
  path: string
  size: number
  sha256: string
}

async function fetchOne(agent: Agent, base: string, f: FileToFetch, outDir: string): Promise<number> {
  const target = join(outDir, f.path)
  await mkdir(dirname(target), { recursive: true })
  const res = await new Promise<import('node:http').IncomingMessage>((resolve, reject) => {
    get(`${base}/${f.path.split('/').map(encodeURIComponent).join('/')}`, { agent }, resolve).once('error', reject)
  })
  if (res.statusCode !== 200) throw new Error(`GET ${f.path}: HTTP ${res.statusCode}`)
  const hash = createHash('sha256')
  let n = 0
  await pipeline(res, new Transform({
    transform(chunk: Buffer, _e, cb) {
      hash.update(chunk)
      n += chunk.length
      cb(null, chunk)
    },
  }), createWriteStream(target))
  if (n !== f.size || hash.digest('hex') !== f.sha256) throw new Error(`${f.path} does not verify`)
  return n
}

async function clientMain(listFile: string, base: string, outDir: string, concurrency: number): Promise<void> {
  const files = JSON.parse(await readFile(listFile, 'utf8')) as FileToFetch[]
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency })
  process.stdout.write('READY\n')
  await new Promise<void>((resolve) => createInterface({ input: process.stdin }).once('line', () => resolve()))
  const t0 = performance.now()
  let next = 0
  let bytes = 0
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < files.length) {
      const n = await fetchOne(agent, base, files[next++]!, outDir)
      bytes += n
    }
  }))
  process.stdout.write(`DONE ${JSON.stringify({ ms: performance.now() - t0, bytes })}\n`)
  agent.destroy()
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { client: { type: 'string' }, base: { type: 'string' }, out: { type: 'string' }, concurrency: { type: 'string', default: '4' } } })
  await clientMain(values.client!, values.base!, values.out!, Number(values.concurrency))
}
