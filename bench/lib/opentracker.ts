// Debian's opentracker as the C anchor of the tracker benchmark (issue 14 item 5). Fetched like
// nginx (bench/lib/nginx.ts): the package and its one library that a Debian system may lack
// (libowfat0) are downloaded with apt-get and unpacked into .tools/opentracker (no service is
// installed or started). It runs in the foreground, UDP only, bound to 127.0.0.1.
//
// Debian builds it in "private" mode (README.Debian: WANT_ACCESSLIST_WHITE): it answers only
// the info hashes of its whitelist, so the benchmark writes its swarms' hashes there. Started as
// root it chroots to its directory and drops to `nobody`, so that directory and the whitelist
// are made world-readable.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { createSocket } from 'node:dgram'
import { chmodSync, existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PROJECT_ROOT } from '../../infra/project-root.ts'

const TOOLS = join(PROJECT_ROOT, '.tools')
const ROOT = join(TOOLS, 'opentracker')
const BIN = join(ROOT, 'usr', 'bin', 'opentracker')
const LIB = join(ROOT, 'usr', 'lib')
const PACKAGES = ['opentracker', 'libowfat0']

/** The opentracker binary (and the directory of its libowfat), fetched from Debian's packages the first time. */
export function ensureOpentracker(): { bin: string; libDir: string } {
  if (existsSync(BIN) && existsSync(join(LIB, 'libowfat.so.0'))) return { bin: BIN, libDir: LIB }
  const work = join(TOOLS, 'opentracker-download')
  rmSync(work, { recursive: true, force: true })
  mkdirSync(work, { recursive: true })
  execFileSync('apt-get', ['download', ...PACKAGES], { cwd: work, stdio: ['ignore', 'ignore', 'inherit'] })
  for (const pkg of PACKAGES) {
    const deb = readdirSync(work).find((f) => f.startsWith(`${pkg}_`) && f.endsWith('.deb'))
    if (!deb) throw new Error(`apt-get download ${pkg} produced no .deb`)
    execFileSync('dpkg-deb', ['-x', join(work, deb), ROOT])
  }
  rmSync(work, { recursive: true, force: true })
  return { bin: BIN, libDir: LIB }
}

export interface Opentracker {
  url: string
  child: ChildProcess
  stop(): Promise<void>
}

/** A free UDP port on 127.0.0.1 (bound and released). */
async function freeUdpPort(): Promise<number> {
  const s = createSocket('udp4')
  await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', resolve))
  const { port } = s.address()
  await new Promise<void>((resolve) => s.close(() => resolve()))
  return port
}

/** Whether a BEP 15 connect to 127.0.0.1:`port` is answered within `ms`. */
async function answersConnect(port: number, ms: number): Promise<boolean> {
  const s = createSocket('udp4')
  try {
    return await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), ms)
      s.once('message', (m) => {
        clearTimeout(timer)
        resolve(m.byteLength >= 16 && m.readUInt32BE(0) === 0)
      })
      const req = Buffer.alloc(16)
      req.writeBigUInt64BE(0x41727101980n, 0)
      req.writeUInt32BE(0x1234, 12)
      s.send(req, port, '127.0.0.1')
    })
  } finally {
    s.close()
  }
}

/**
 * opentracker answering UDP on 127.0.0.1 for the swarms `infoHashes` (its whitelist); `prefix`
 * goes before the command (e.g. `['taskset', '-c', '1']` to pin it to a core).
 */
export async function startOpentracker(infoHashes: readonly Buffer[], prefix: readonly string[] = []): Promise<Opentracker> {
  const { bin, libDir } = ensureOpentracker()
  const dir = await mkdtemp(join(tmpdir(), 'upswarm-opentracker-'))
  chmodSync(dir, 0o755)
  writeFileSync(join(dir, 'whitelist'), infoHashes.map((h) => h.toString('hex')).join('\n') + '\n', { mode: 0o644 })
  const port = await freeUdpPort()
  // -i before -P: the address applies to the ports after it. No -p: no TCP listener at all.
  const args = ['-i', '127.0.0.1', '-P', String(port), '-d', dir, '-w', 'whitelist', ...(process.getuid?.() === 0 ? ['-u', 'nobody'] : [])]
  const [cmd, ...pre] = [...prefix, bin]
  const child = spawn(cmd!, [...pre, ...args], { cwd: dir, env: { ...process.env, LD_LIBRARY_PATH: libDir }, stdio: ['ignore', 'ignore', 'pipe'] })
  let err = ''
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()))
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM')
      await new Promise((r) => child.once('exit', r))
    }
    rmSync(dir, { recursive: true, force: true })
  }
  // Ready when it answers a connect (it reads its whitelist at start).
  for (let i = 0; ; i++) {
    if (await answersConnect(port, 100)) break
    if (i > 50 || child.exitCode !== null) {
      await stop()
      throw new Error(`opentracker did not start: ${err.trim() || 'no answer on UDP'}`)
    }
  }
  return { url: `udp://127.0.0.1:${port}`, child, stop }
}
