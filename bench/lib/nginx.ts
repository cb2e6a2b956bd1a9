// Debian's nginx as the plain static file server the benchmarks compare with (issue 13 item 4:
// `init` against what curl gets from it for the same files). Fetched like nats-server: the
// package is downloaded with apt-get and unpacked into .tools/ (no service is installed or started);
// run in the foreground on 127.0.0.1 with a configuration of its own.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { mkdtemp } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PROJECT_ROOT } from '../../infra/project-root.ts'
import { timed } from './cluster.ts'

const TOOLS = join(PROJECT_ROOT, '.tools')
const NGINX = join(TOOLS, 'nginx', 'usr', 'sbin', 'nginx')

/** The nginx binary, fetched from Debian's packages the first time. */
export function ensureNginx(): string {
  if (existsSync(NGINX)) return NGINX
  const work = join(TOOLS, 'nginx-download')
  rmSync(work, { recursive: true, force: true })
  mkdirSync(work, { recursive: true })
  execFileSync('apt-get', ['download', 'nginx'], { cwd: work, stdio: ['ignore', 'ignore', 'inherit'] })
  const deb = readdirSync(work).find((f) => f.startsWith('nginx_') && f.endsWith('.deb'))
  if (!deb) throw new Error('apt-get download nginx produced no .deb')
  execFileSync('dpkg-deb', ['-x', join(work, deb), join(TOOLS, 'nginx')])
  rmSync(work, { recursive: true, force: true })
  return NGINX
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number }
      s.close(() => resolve(port))
    })
  })
}

export interface Nginx { url: string; stop(): Promise<void> }

/** nginx serving `root` on 127.0.0.1 (one worker, sendfile, no access log). */
export async function startNginx(root: string): Promise<Nginx> {
  const bin = ensureNginx()
  const dir = await mkdtemp(join(tmpdir(), 'upswarm-nginx-'))
  const port = await freePort()
  const conf = join(dir, 'nginx.conf')
  writeFileSync(conf, [
    'daemon off;', 'master_process off;', 'worker_processes 1;', `pid ${join(dir, 'nginx.pid')};`, 'error_log stderr warn;',
    'events { worker_connections 1024; }',
    'http {',
    '  access_log off; sendfile on; tcp_nopush on; keepalive_requests 1000000;',
    ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `  ${t}_temp_path ${join(dir, t)};`),
    `  server { listen 127.0.0.1:${port}; root ${root}; }`,
    '}',
  ].join('\n'))
  const child: ChildProcess = spawn(bin, ['-c', conf, '-p', dir], { stdio: ['ignore', 'ignore', 'pipe'] })
  let err = ''
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()))
  // Ready when it answers.
  for (let i = 0; ; i++) {
    const ok = await fetch(`http://127.0.0.1:${port}/`).then(() => true, () => false)
    if (ok) break
    if (i > 100 || child.exitCode !== null) throw new Error(`nginx did not start: ${err.trim()}`)
    await new Promise((r) => setTimeout(r, 50))
  }
  return {
    url: `http://127.0.0.1:${port}`,
    async stop() {
      child.kill('SIGTERM')
      await new Promise((r) => child.once('exit', r))
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

/** curl fetching `paths` from `base` into `into` over keep-alive connections, `parallel` at once: milliseconds. */
export async function curlMany(base: string, paths: readonly string[], into: string, parallel = 8): Promise<number> {
  const list = join(into, '..', `curl-${process.pid}-${Date.now()}.txt`)
  writeFileSync(list, paths.map((p) => `url = "${base}/${p}"\noutput = "${join(into, p)}"\n`).join(''))
  const r = await timed('curl', ['--silent', '--fail', '--create-dirs', '--parallel', '--parallel-max', String(parallel), '-K', list])
  rmSync(list, { force: true })
  return r.ms
}
