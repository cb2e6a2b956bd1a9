#!/usr/bin/env node
// Makes sure the programs the project runs are here (prestart / pretest): nats-server, and the
// Debian tools the tests and benchmarks compare against (aria2c, rsync, git); with --test
// (pretest only), also Debian's chromium, which the inspect page's browser test drives.
// Preference: $UPSWARM_NATS_SERVER, then the project-local copy in .tools/, then one on PATH
// that is recent enough; otherwise fetch Debian trixie's package (>= 2.10.23, supports
// `sync_interval: always`) with apt into .tools/ via `dpkg-deb -x`; fall back to bookworm's
// 2.9.10 with a warning. Prints the path it settled on.
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const tools = join(root, '.tools')
const localBin = join(tools, 'nats-server', 'usr', 'sbin', 'nats-server')

function version(bin) {
  const r = spawnSync(bin, ['--version'], { encoding: 'utf8' })
  if (r.status !== 0) return null
  const m = /v?(\d+)\.(\d+)\.(\d+)/.exec(r.stdout + r.stderr)
  return m ? m.slice(1, 4).map(Number) : null
}
const atLeast = (v, want) => v[0] !== want[0] ? v[0] > want[0] : v[1] !== want[1] ? v[1] > want[1] : v[2] >= want[2]
const goodEnough = (v) => v && atLeast(v, [2, 10, 23])

function which(name) {
  const r = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' })
  return r.status === 0 ? r.stdout.trim() : null
}

function fetchTrixie() {
  const work = join(tools, 'apt-trixie')
  rmSync(work, { recursive: true, force: true })
  mkdirSync(join(work, 'lists', 'partial'), { recursive: true })
  mkdirSync(join(work, 'cache', 'archives', 'partial'), { recursive: true })
  writeFileSync(join(work, 'sources.list'),
    'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main\n')
  const opts = [
    '-o', `Dir::Etc::sourcelist=${join(work, 'sources.list')}`,
    '-o', 'Dir::Etc::sourceparts=/dev/null',
    '-o', `Dir::State::Lists=${join(work, 'lists')}`,
    '-o', `Dir::Cache=${join(work, 'cache')}`,
    '-o', 'APT::Get::List-Cleanup=0',
    '-o', 'APT::Sandbox::User=root',
    '-q',
  ]
  execFileSync('apt-get', [...opts, 'update'], { stdio: ['ignore', 'ignore', 'inherit'] })
  execFileSync('apt-get', [...opts, 'download', 'nats-server'], { cwd: work, stdio: ['ignore', 'ignore', 'inherit'] })
  const deb = readdirSync(work).find((f) => f.startsWith('nats-server_') && f.endsWith('.deb'))
  if (!deb) throw new Error('apt-get download produced no nats-server .deb')
  rmSync(join(tools, 'nats-server'), { recursive: true, force: true })
  execFileSync('dpkg-deb', ['-x', join(work, deb), join(tools, 'nats-server')])
  rmSync(work, { recursive: true, force: true })
}

function main() {
  const fromEnv = process.env.UPSWARM_NATS_SERVER
  if (fromEnv) {
    if (!version(fromEnv)) fail(`UPSWARM_NATS_SERVER=${fromEnv} does not run (\`${fromEnv} --version\` failed).`)
    return done(fromEnv)
  }
  if (existsSync(localBin) && goodEnough(version(localBin))) return done(localBin)
  const onPath = which('nats-server')
  if (onPath && goodEnough(version(onPath))) return done(onPath)

  mkdirSync(tools, { recursive: true })
  try {
    console.error('upswarm: fetching nats-server from Debian trixie (apt-get download + dpkg-deb -x into .tools/) …')
    fetchTrixie()
    if (goodEnough(version(localBin))) return done(localBin)
    console.error('upswarm: the trixie nats-server did not run here.')
  } catch (err) {
    console.error(`upswarm: could not fetch trixie's nats-server: ${err.message}`)
  }
  let fallback = onPath
  if (!fallback) {
    try {
      execFileSync('apt-get', ['install', '-y', '-q', 'nats-server'], { stdio: ['ignore', 'ignore', 'inherit'] })
      fallback = which('nats-server')
    } catch {}
  }
  if (fallback && version(fallback)) {
    console.error(`upswarm: WARNING: using ${fallback} (v${version(fallback).join('.')}), older than 2.10.23: ` +
      'JetStream cannot fsync before acknowledging (no `sync_interval: always`), so a power loss may lose acknowledged releases.')
    return done(fallback)
  }
  fail('no nats-server could be found or installed. Run, as root:\n' +
    '  apt-get update && apt-get install -y nats-server\n' +
    'or point UPSWARM_NATS_SERVER at a nats-server >= 2.10.23 binary.')
}

function done(bin) {
  mkdirSync(tools, { recursive: true })
  writeFileSync(join(tools, 'nats-server.path'), bin + '\n')
  console.error(`upswarm: nats-server ${version(bin).join('.')} at ${bin}`)
}

/** Installs Debian packages whose commands are missing (best effort; tests say what is absent). */
function ensureDebianTools() {
  const wanted = { aria2c: 'aria2', rsync: 'rsync', git: 'git' }
  // Issue 12: the browser test runs Debian's chromium at this path (playwright-core drives it).
  const browser = process.argv.includes('--test') && !existsSync(CHROMIUM) ? ['chromium'] : []
  const missing = [...Object.entries(wanted).filter(([cmd]) => !which(cmd)).map(([, pkg]) => pkg), ...browser]
  if (missing.length === 0) return
  console.error(`upswarm: installing ${missing.join(', ')} from Debian's packages …`)
  const install = () => spawnSync('apt-get', ['install', '-y', '-q', ...missing], { stdio: ['ignore', 'ignore', 'inherit'] }).status === 0
  if (!install()) {
    spawnSync('apt-get', ['update', '-q'], { stdio: ['ignore', 'ignore', 'inherit'] })
    if (!install()) console.error(`upswarm: WARNING: could not install ${missing.join(', ')}; run: apt-get install -y ${missing.join(' ')}`)
  }
  if (browser.length && !existsSync(CHROMIUM)) console.error(`upswarm: WARNING: no ${CHROMIUM}: test/e2e/inspect-page.test.ts will fail saying so`)
}
const CHROMIUM = '/usr/bin/chromium'
function fail(msg) {
  console.error(`upswarm: ${msg}`)
  process.exit(1)
}

main()
ensureDebianTools()
