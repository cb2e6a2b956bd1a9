// Piece-transfer micro-benchmark: MiB/s of the piece protocol over TCP + Noise on loopback.
// A seed in its own process (started by this file with --serve) holds one random blob; this
// process dials it and fetches the blob piece by piece with a window of requests in flight,
// then checks the SHA-256 of what arrived. Not run in tests.
//
//   node --import tsx bench/swarm-throughput.ts
//   options: --mib N (blob size, 128) --piece KiB (1024) --window N (requests in flight, 8)
//            --rate BYTES_PER_S (seed upload limit, 0 = none)
import { spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import NoiseSecretStream from '@hyperswarm/secret-stream'
import { PieceSession } from '../infra/swarm/piece-protocol.ts'
import { SwarmTransport } from '../infra/swarm/transport.ts'

const MiB = 1 << 20

export interface ThroughputResult {
  bytes: number
  pieceBytes: number
  window: number
  seconds: number
  mibPerSecond: number
  verified: boolean
}

async function serve(mib: number, rate: number): Promise<void> {
  const blob = randomBytes(mib * MiB)
  const sha256 = createHash('sha256').update(blob).digest('hex')
  const transport = new SwarmTransport({
    keyPair: NoiseSecretStream.keyPair(),
    onConnection: (stream) => {
      new PieceSession(stream, { maxUploadRate: rate, serve: async (_sha, offset, length) => blob.subarray(offset, offset + length) })
    },
  })
  const addr = await transport.listen('127.0.0.1')
  process.stdout.write(JSON.stringify({ ...addr, sha256, size: blob.length }) + '\n')
  process.stdin.resume()
  process.stdin.on('end', () => void transport.close().then(() => process.exit(0)))
}

export async function measure(opts: { mib?: number; pieceBytes?: number; window?: number; rate?: number } = {}): Promise<ThroughputResult> {
  const mib = opts.mib ?? 128
  const pieceBytes = opts.pieceBytes ?? MiB
  const window = opts.window ?? 8
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--serve', '--mib', String(mib), '--rate', String(opts.rate ?? 0)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  })
  try {
    const line = await new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout! }).once('line', resolve)
      child.once('exit', (code) => reject(new Error(`seed exited with ${code} before it was ready`)))
    })
    const seed = JSON.parse(line) as { host: string; port: number; sha256: string; size: number }
    let session!: PieceSession
    const transport = new SwarmTransport({ keyPair: NoiseSecretStream.keyPair(), onConnection: (stream) => { session = new PieceSession(stream) } })
    try {
      await transport.dial(seed.host, seed.port)
      await session.opened()
      const out = Buffer.allocUnsafe(seed.size)
      let next = 0
      const started = performance.now()
      const worker = async (): Promise<void> => {
        while (next < seed.size) {
          const offset = next
          next += pieceBytes
          const piece = await session.request(seed.sha256, offset, Math.min(pieceBytes, seed.size - offset))
          piece.copy(out, offset)
        }
      }
      await Promise.all(Array.from({ length: window }, worker))
      const seconds = (performance.now() - started) / 1000
      const verified = createHash('sha256').update(out).digest('hex') === seed.sha256
      return { bytes: seed.size, pieceBytes, window, seconds, mibPerSecond: seed.size / MiB / seconds, verified }
    } finally {
      await transport.close()
    }
  } finally {
    child.stdin!.end()
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: {
      serve: { type: 'boolean', default: false },
      mib: { type: 'string', default: '128' },
      piece: { type: 'string', default: '1024' },
      window: { type: 'string', default: '8' },
      rate: { type: 'string', default: '0' },
    },
  })
  if (values.serve) {
    await serve(Number(values.mib), Number(values.rate))
  } else {
    const result = await measure({ mib: Number(values.mib), pieceBytes: Number(values.piece) * 1024, window: Number(values.window), rate: Number(values.rate) })
    process.stdout.write(JSON.stringify(result) + '\n')
    if (!result.verified) process.exitCode = 1
  }
}
