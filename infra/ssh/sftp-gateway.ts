// R-PROXY-PROTO: the proxy's SSH door. An SFTP server (SSH v2: encrypted, integrity-checked,
// host-key authenticated) with a read-only view of every synced release, fed by the same backend
// as the HTTP gateway (byte ranges from the assigned servers, R-ACCEL-1; manifests and bytes
// verified before they are sent, R-VERIFY — a READ of bytes that fail ends with an error):
//   /                       one directory per product UUID the pool holds
//   /UUID/                  one directory per revision 1…newest, and `latest`
//   /UUID/REV/PATH          the release's tree: files, directories and symlinks, with their modes
// Anything that would write (open for writing, remove, rename, mkdir, setstat, symlink) is
// refused with PERMISSION_DENIED: releases are published signed, never edited through the proxy.
import { readFile, writeFile, mkdir } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { dirname, posix } from 'node:path'
import ssh2 from 'ssh2'
import type { Attributes, Connection, FileEntry as SftpName, ParsedKey, SFTPWrapper } from 'ssh2'
import { UpswarmError, errorMessage, isUpswarmError } from '../errors.ts'
import type { GatewayBackend } from '../http/gateway.ts'
import { UUID_RE, type Entry, type FileEntry, type SignedRelease } from '../release/manifest.ts'

const { Server, utils } = ssh2
const { STATUS_CODE, OPEN_MODE } = utils.sftp

/** Bytes fetched from the servers at once per open file; SFTP reads (32–256 KiB) are served from it. */
const CHUNK = 1024 * 1024
/** Chunks kept per open file (sequential readers with several reads in flight hit the newest). */
const CHUNKS_KEPT = 4
/** Open files and directories per SSH session. */
const MAX_HANDLES = 256
/** Largest single READ answered (clients ask 32–256 KiB). */
const MAX_READ = 256 * 1024
const S_IFDIR = 0o040000
const S_IFREG = 0o100000
const S_IFLNK = 0o120000

export interface SftpGatewayOptions {
  host: string
  port: number
  backend: GatewayBackend
  /** Private host key (OpenSSH or PEM). See loadOrCreateHostKey. */
  hostKey: string
  /** OpenSSH authorized_keys text: only these keys may log in. Without it anyone may read, as over HTTP. */
  authorizedKeys?: string
  log?: (msg: string) => void
}

export interface SftpGateway {
  /** sftp://host:port */
  url: string
  port: number
  close(): Promise<void>
}

/**
 * An Ed25519 key pair in OpenSSH format that ssh2 itself can read back. ssh2 1.17's generator
 * strips leading zero bytes from the public key, so about 1 key in 256 is malformed (a server that
 * could not load its own host key); such a pair is drawn again.
 */
export function generateSshKeyPair(): { private: string; public: string } {
  for (let i = 0; i < 32; i++) {
    const pair = utils.generateKeyPairSync('ed25519')
    if (!(utils.parseKey(pair.private) instanceof Error) && !(utils.parseKey(pair.public) instanceof Error)) return pair
  }
  throw new UpswarmError('UPSWARM_E_IO', 'could not generate an SSH key pair that parses (32 tries)')
}

/** The host key in `file`, created (Ed25519, mode 0600) on first use so the server keeps its identity. */
export async function loadOrCreateHostKey(file: string): Promise<string> {
  try {
    const held = await readFile(file, 'utf8')
    const parsed = utils.parseKey(held)
    if (parsed instanceof Error) {
      throw new UpswarmError('UPSWARM_E_CONFIG', `the SSH host key ${file} cannot be read (${parsed.message}); remove it and a new one is made on the next start (clients will see a new host key)`)
    }
    return held
  } catch (err) {
    if (err instanceof UpswarmError) throw err
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new UpswarmError('UPSWARM_E_IO', `cannot read the SSH host key ${file}: ${errorMessage(err)}`, { cause: err })
    }
  }
  const { private: key } = generateSshKeyPair()
  await mkdir(dirname(file), { recursive: true })
  try {
    await writeFile(file, key, { mode: 0o600, flag: 'wx' })
    return key
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return readFile(file, 'utf8')
    throw new UpswarmError('UPSWARM_E_IO', `cannot write the SSH host key ${file}: ${errorMessage(err)}`, { cause: err })
  }
}

/** Parses authorized_keys text (comments and options-free lines); a bad line is an error naming it. */
export function parseAuthorizedKeys(text: string, where: string): ParsedKey[] {
  const keys: ParsedKey[] = []
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim()
    if (line === '' || line.startsWith('#')) return
    const parsed = utils.parseKey(line)
    if (parsed instanceof Error) throw new UpswarmError('UPSWARM_E_CONFIG', `${where}:${i + 1}: not a public key: ${parsed.message}`)
    keys.push(Array.isArray(parsed) ? parsed[0]! : parsed)
  })
  if (keys.length === 0) throw new UpswarmError('UPSWARM_E_CONFIG', `${where} holds no public key; leave the option out to let anyone read`)
  return keys
}

export async function startSftpGateway(opts: SftpGatewayOptions): Promise<SftpGateway> {
  const allowed = opts.authorizedKeys === undefined ? undefined : parseAuthorizedKeys(opts.authorizedKeys, 'authorized keys')
  const log = opts.log ?? (() => {})
  const clients = new Set<Connection>()
  const server = new Server({ hostKeys: [opts.hostKey] }, (client: Connection) => {
    clients.add(client)
    client.on('close', () => clients.delete(client))
    client.on('error', (err) => log(`ssh client error: ${err.message}`))
    client.on('authentication', (ctx) => {
      if (!allowed) return ctx.accept()
      if (ctx.method !== 'publickey') return ctx.reject(['publickey'])
      const key = allowed.find((k) => k.type === ctx.key.algo && k.getPublicSSH().equals(ctx.key.data))
      // Without a signature the client only asks whether this key would do.
      if (key && (!ctx.signature || key.verify(ctx.blob!, ctx.signature, ctx.hashAlgo) === true)) return ctx.accept()
      return ctx.reject(['publickey'])
    })
    client.on('ready', () => {
      client.on('session', (acceptSession) => {
        const session = acceptSession()
        session.on('sftp', (acceptSftp) => serveSftp(acceptSftp(), opts.backend, log))
        // No shell, no exec: this door is for files.
        session.on('exec', (_accept, reject) => reject())
        session.on('shell', (_accept, reject) => reject())
        session.on('pty', (_accept, reject) => reject?.())
      })
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: Error) => reject(new UpswarmError('UPSWARM_E_CONFIG', `cannot listen for SSH on ${opts.host}:${opts.port}: ${err.message}`, { cause: err })))
    server.listen(opts.port, opts.host, () => resolve())
  })
  server.on('error', (err: Error) => log(`ssh server error: ${err.message}`))
  const port = (server.address() as AddressInfo).port
  return {
    url: `sftp://${opts.host}:${port}`,
    port,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve())
      // Open sessions would keep close() waiting.
      for (const c of clients) c.end()
    }),
  }
}

/** What a path names in the view. */
type Node =
  | { kind: 'root' }
  | { kind: 'product'; product: string; newest: number }
  | { kind: 'tree'; release: SignedRelease; dir: string }
  | { kind: 'entry'; release: SignedRelease; entry: Entry }

type Handle =
  | { kind: 'file'; release: SignedRelease; entry: FileEntry; chunks: Map<number, Promise<Buffer>> }
  | { kind: 'dir'; names: SftpName[]; sent: boolean }

class SftpError extends Error {
  constructor(readonly code: number, message: string) {
    super(message)
  }
}

function serveSftp(sftp: SFTPWrapper, backend: GatewayBackend, log: (m: string) => void): void {
  const handles = new Map<number, Handle>()
  let nextHandle = 1

  const newHandle = (h: Handle): Buffer => {
    if (handles.size >= MAX_HANDLES) throw new SftpError(STATUS_CODE.FAILURE, `too many open files (${MAX_HANDLES}); close some`)
    const id = nextHandle++
    handles.set(id, h)
    const buf = Buffer.alloc(4)
    buf.writeUInt32BE(id)
    return buf
  }
  const handleOf = (buf: Buffer): Handle => {
    const h = buf.length === 4 ? handles.get(buf.readUInt32BE(0)) : undefined
    if (!h) throw new SftpError(STATUS_CODE.FAILURE, 'invalid handle')
    return h
  }
  /** Runs a request; an error becomes a status reply with a message saying what and where. */
  const answer = (reqId: number, work: () => Promise<void> | void): void => {
    Promise.resolve().then(work).catch((err: unknown) => {
      if (err instanceof SftpError) return sftp.status(reqId, err.code, err.message)
      if (isUpswarmError(err) && /NOT_FOUND|UNKNOWN_REVISION/.test(err.code)) return sftp.status(reqId, STATUS_CODE.NO_SUCH_FILE, err.message)
      log(`sftp request failed: ${errorMessage(err)}`)
      sftp.status(reqId, STATUS_CODE.FAILURE, errorMessage(err))
    })
  }
  const readOnly = (what: string) => (reqId: number): void => {
    sftp.status(reqId, STATUS_CODE.PERMISSION_DENIED, `${what}: this view is read-only (releases are published signed with \`upswarm publish\`)`)
  }

  sftp.on('REALPATH', (reqId, path) => answer(reqId, async () => {
    const p = normalize(path)
    sftp.name(reqId, [{ filename: p, longname: p, attrs: attrsOf(await resolve(backend, p, true)) }])
  }))
  for (const op of ['STAT', 'LSTAT'] as const) {
    sftp.on(op, (reqId: number, path: string) => answer(reqId, async () => {
      sftp.attrs(reqId, attrsOf(await resolve(backend, normalize(path), op === 'STAT')))
    }))
  }
  sftp.on('READLINK', (reqId, path) => answer(reqId, async () => {
    const node = await resolve(backend, normalize(path), false)
    if (node.kind !== 'entry' || node.entry.kind !== 'symlink') throw new SftpError(STATUS_CODE.FAILURE, `${path} is not a symbolic link`)
    sftp.name(reqId, [{ filename: node.entry.target, longname: node.entry.target, attrs: attrsOf(node) }])
  }))
  sftp.on('OPENDIR', (reqId, path) => answer(reqId, async () => {
    const p = normalize(path)
    const names = await list(backend, p, await resolve(backend, p, true))
    sftp.handle(reqId, newHandle({ kind: 'dir', names, sent: false }))
  }))
  sftp.on('READDIR', (reqId, handle) => answer(reqId, () => {
    const h = handleOf(handle)
    if (h.kind !== 'dir') throw new SftpError(STATUS_CODE.FAILURE, 'not a directory handle')
    if (h.sent || h.names.length === 0) return sftp.status(reqId, STATUS_CODE.EOF)
    h.sent = true
    sftp.name(reqId, h.names)
  }))
  sftp.on('OPEN', (reqId, filename, flags) => answer(reqId, async () => {
    if (flags & (OPEN_MODE.WRITE | OPEN_MODE.APPEND | OPEN_MODE.CREAT | OPEN_MODE.TRUNC)) return readOnly(`open ${filename} for writing`)(reqId)
    const node = await resolve(backend, normalize(filename), true)
    if (node.kind !== 'entry' || node.entry.kind !== 'file') throw new SftpError(STATUS_CODE.FAILURE, `${filename} is a directory, not a file`)
    sftp.handle(reqId, newHandle({ kind: 'file', release: node.release, entry: node.entry, chunks: new Map() }))
  }))
  sftp.on('READ', (reqId, handle, offset, length) => answer(reqId, async () => {
    const h = handleOf(handle)
    if (h.kind !== 'file') throw new SftpError(STATUS_CODE.FAILURE, 'not a file handle')
    if (offset >= h.entry.size) return sftp.status(reqId, STATUS_CODE.EOF)
    const end = Math.min(h.entry.size, offset + Math.min(length, MAX_READ))
    const parts: Buffer[] = []
    for (let at = offset; at < end;) {
      const index = Math.floor(at / CHUNK)
      const chunk = await chunkOf(backend, h, index)
      const from = at - index * CHUNK
      const take = Math.min(chunk.length - from, end - at)
      parts.push(chunk.subarray(from, from + take))
      at += take
    }
    sftp.data(reqId, parts.length === 1 ? parts[0]! : Buffer.concat(parts))
  }))
  sftp.on('FSTAT', (reqId, handle) => answer(reqId, () => {
    const h = handleOf(handle)
    if (h.kind !== 'file') throw new SftpError(STATUS_CODE.FAILURE, 'not a file handle')
    sftp.attrs(reqId, attrsOf({ kind: 'entry', release: h.release, entry: h.entry }))
  }))
  sftp.on('CLOSE', (reqId, handle) => answer(reqId, () => {
    handleOf(handle)
    handles.delete(handle.readUInt32BE(0))
    sftp.status(reqId, STATUS_CODE.OK)
  }))
  sftp.on('WRITE', readOnly('write'))
  sftp.on('FSETSTAT', readOnly('setstat'))
  sftp.on('SETSTAT', readOnly('setstat'))
  sftp.on('REMOVE', readOnly('remove'))
  sftp.on('RMDIR', readOnly('rmdir'))
  sftp.on('MKDIR', readOnly('mkdir'))
  sftp.on('RENAME', readOnly('rename'))
  sftp.on('SYMLINK', readOnly('symlink'))
  sftp.on('EXTENDED', (reqId) => sftp.status(reqId, STATUS_CODE.OP_UNSUPPORTED, 'no extensions'))
  sftp.on('error', (err: Error) => log(`sftp session error: ${err.message}`))
  // The client is done (EOF on the channel): close our side too, or it waits for us.
  sftp.on('end', () => {
    handles.clear()
    sftp.end()
  })
}

/** The CHUNK-sized piece `index` of an open file, fetched once from the servers; a few kept. */
function chunkOf(backend: GatewayBackend, h: Extract<Handle, { kind: 'file' }>, index: number): Promise<Buffer> {
  let p = h.chunks.get(index)
  if (!p) {
    const start = index * CHUNK
    const end = Math.min(h.entry.size, start + CHUNK) - 1
    p = (async () => {
      const parts: Uint8Array[] = []
      for await (const part of backend.read(h.release, h.entry, start, end)) parts.push(part)
      return Buffer.concat(parts)
    })()
    p.catch(() => h.chunks.delete(index)) // a failed chunk is fetched again on the next read
    h.chunks.set(index, p)
    if (h.chunks.size > CHUNKS_KEPT) h.chunks.delete(h.chunks.keys().next().value!)
  }
  return p
}

function normalize(path: string): string {
  const p = posix.normalize(`/${path}`)
  return p.length > 1 && p.endsWith('/') ? p.slice(0, -1) : p
}

/** What `path` names; `follow` resolves symlinks inside a release (like stat vs lstat). */
async function resolve(backend: GatewayBackend, path: string, follow: boolean, depth = 0): Promise<Node> {
  const parts = path.split('/').filter(Boolean)
  if (parts.length === 0) return { kind: 'root' }
  const product = parts[0]!.toLowerCase()
  if (!UUID_RE.test(product)) throw new SftpError(STATUS_CODE.NO_SUCH_FILE, `${path}: ${parts[0]} is not a product UUID`)
  if (parts.length === 1) {
    const newest = (await backend.products?.())?.[product] ?? 0
    if (newest === 0) throw new SftpError(STATUS_CODE.NO_SUCH_FILE, `${path}: no healthy repository server holds product ${product}`)
    return { kind: 'product', product, newest }
  }
  const rawRev = parts[1]!
  const rev = rawRev === 'latest' ? 'latest' : Number(rawRev)
  if (rev !== 'latest' && (!Number.isInteger(rev) || rev < 1)) throw new SftpError(STATUS_CODE.NO_SUCH_FILE, `${path}: ${rawRev} is not a revision`)
  const release = await backend.release(product, rev)
  const rel = parts.slice(2).join('/')
  if (rel === '') return { kind: 'tree', release, dir: '' }
  const entry = release.manifest.entries.find((e) => e.path === rel)
  if (entry?.kind === 'symlink' && follow) {
    if (depth >= 8) throw new SftpError(STATUS_CODE.FAILURE, `${path}: too many levels of symbolic links`)
    const target = entry.target.startsWith('/') ? null : posix.normalize(posix.join(posix.dirname(rel), entry.target))
    if (target === null || target.startsWith('..')) throw new SftpError(STATUS_CODE.NO_SUCH_FILE, `${path}: its link target ${entry.target} is outside the release`)
    return resolve(backend, `/${product}/${rawRev}/${target}`, true, depth + 1)
  }
  if (entry?.kind === 'dir') return { kind: 'tree', release, dir: rel }
  if (entry) return { kind: 'entry', release, entry }
  // A directory the manifest lists only through its contents.
  if (release.manifest.entries.some((e) => e.path.startsWith(`${rel}/`))) return { kind: 'tree', release, dir: rel }
  throw new SftpError(STATUS_CODE.NO_SUCH_FILE, `${path}: ${rel} is not in revision ${release.manifest.rev} of ${product}`)
}

async function list(backend: GatewayBackend, path: string, node: Node): Promise<SftpName[]> {
  const named = (filename: string, n: Node): SftpName => {
    const attrs = attrsOf(n)
    return { filename, longname: longname(filename, attrs), attrs }
  }
  if (node.kind === 'root') {
    const products = (await backend.products?.()) ?? {}
    return Object.entries(products).filter(([, newest]) => newest > 0).sort().map(([product, newest]) => named(product, { kind: 'product', product, newest }))
  }
  if (node.kind === 'product') {
    const latest = await backend.release(node.product, 'latest')
    const revs = Array.from({ length: node.newest }, (_, i) => named(String(i + 1), { kind: 'product', product: node.product, newest: node.newest }))
    return [named('latest', { kind: 'tree', release: latest, dir: '' }), ...revs]
  }
  if (node.kind === 'entry') throw new SftpError(STATUS_CODE.FAILURE, `${path} is not a directory`)
  const prefix = node.dir === '' ? '' : `${node.dir}/`
  const children = new Map<string, SftpName>()
  for (const e of node.release.manifest.entries) {
    if (!e.path.startsWith(prefix) || e.path === node.dir) continue
    const rest = e.path.slice(prefix.length)
    const slash = rest.indexOf('/')
    const name = slash === -1 ? rest : rest.slice(0, slash)
    if (slash === -1) children.set(name, named(name, e.kind === 'dir' ? { kind: 'tree', release: node.release, dir: e.path } : { kind: 'entry', release: node.release, entry: e }))
    else if (!children.has(name)) children.set(name, named(name, { kind: 'tree', release: node.release, dir: `${prefix}${name}` }))
  }
  return [...children.values()].sort((a, b) => (a.filename < b.filename ? -1 : 1))
}

function attrsOf(node: Node): Attributes {
  const time = node.kind === 'tree' || node.kind === 'entry' ? Math.floor(Date.parse(node.release.manifest.createdAt) / 1000) || 0 : 0
  const base = { uid: 0, gid: 0, atime: time, mtime: time }
  if (node.kind !== 'entry') {
    const dirMode = node.kind === 'tree' ? node.release.manifest.entries.find((e) => e.path === node.dir && e.kind === 'dir') : undefined
    return { ...base, mode: S_IFDIR | (dirMode?.kind === 'dir' ? dirMode.mode : 0o755), size: 0 }
  }
  const e = node.entry
  if (e.kind === 'file') return { ...base, mode: S_IFREG | e.mode, size: e.size }
  if (e.kind === 'symlink') return { ...base, mode: S_IFLNK | 0o777, size: Buffer.byteLength(e.target) }
  return { ...base, mode: S_IFDIR | e.mode, size: 0 }
}

/** `ls -l`-style line, as SFTP clients print it. */
function longname(name: string, a: Attributes): string {
  const type = (a.mode & 0o170000) === S_IFDIR ? 'd' : (a.mode & 0o170000) === S_IFLNK ? 'l' : '-'
  const bits = 'rwxrwxrwx'.split('').map((c, i) => (a.mode & (0o400 >> i) ? c : '-')).join('')
  const date = new Date(a.mtime * 1000).toISOString().slice(0, 16).replace('T', ' ')
  return `${type}${bits} 1 upswarm upswarm ${String(a.size).padStart(10)} ${date} ${name}`
}
