// `upswarm root`: the root of trust (issue 10 item 7; docs/formats.md §1.2, §3.2). init makes
// version 1 from offline keys, edit makes the next version (products, rotation, minRev), push
// appends it to UPSWARM_META (admin creds), show prints one. Keys are `upswarm keygen` files.
import { Option, type Command } from 'commander'
import { existsSync } from 'node:fs'
import { UpswarmError } from '../../infra/errors.ts'
import { action, credsOption, intArg, jsonOption, natsOption, tlsCaOption } from './common.ts'
import { printResult } from './output.ts'

const collect = (value: string, previous: string[] = []): string[] => [...previous, value]
const HEX32 = /^[0-9a-f]{64}$/

/** A public key given as hex or as a key file. */
async function publicKeyOf(arg: string): Promise<string> {
  if (HEX32.test(arg)) return arg
  const { readKeyFile } = await import('../../infra/release/keys.ts')
  return (await readKeyFile(arg)).publicKey
}

function productEq(arg: string, flag: string): { product: string; rev: number } {
  const m = /^([0-9a-f-]{36})=(\d+)$/.exec(arg)
  if (!m) throw new UpswarmError('UPSWARM_E_CONFIG', `${flag} takes PRODUCT=REV, e.g. ${flag} 0b6c…=48 (got ${JSON.stringify(arg)})`)
  return { product: m[1]!, rev: Number(m[2]) }
}

/** PRODUCT=KEY (hex or key file), collected per product; PRODUCT= (nothing) removes the role. */
async function productKeys(args: string[] | undefined, flag: string): Promise<Array<{ product: string; keys: string[] }> | undefined> {
  if (!args) return undefined
  const byProduct = new Map<string, string[]>()
  for (const arg of args) {
    const m = /^([0-9a-f-]{36})=(.*)$/.exec(arg)
    if (!m) throw new UpswarmError('UPSWARM_E_CONFIG', `${flag} takes PRODUCT=KEY (hex or a key file), e.g. ${flag} 0b6c…=halt-key.json (got ${JSON.stringify(arg)})`)
    const keys = byProduct.get(m[1]!) ?? []
    if (m[2]) keys.push(await publicKeyOf(m[2]))
    byProduct.set(m[1]!, keys)
  }
  return [...byProduct].map(([product, keys]) => ({ product, keys }))
}

function productFormats(arg: string): { product: string; formats: number[] } {
  const m = /^([0-9a-f-]{36})=(\d+(?:,\d+)*)$/.exec(arg)
  if (!m) throw new UpswarmError('UPSWARM_E_CONFIG', `--formats takes PRODUCT=LIST, e.g. --formats 0b6c…=1,2 (got ${JSON.stringify(arg)})`)
  return { product: m[1]!, formats: m[2]!.split(',').map(Number) }
}

export function registerRootCommands(program: Command): void {
  const root = program.command('root').description('the root of trust: which keys may sign releases and freshness statements (signed offline, rotated by version)')

  root
    .command('init')
    .description('make root version 1 (no products yet), signed by every --root-key')
    .requiredOption('--root-key <file>', 'a root key file (upswarm keygen); repeat for several', collect)
    .option('--threshold <n>', 'root signatures needed for the next version (default 1)', intArg('--threshold'))
    .requiredOption('--fresh-key <file|hex>', "the notary's key (file or public key in hex): signs freshness statements")
    .option('--fresh-lifetime <seconds>', 'how long a freshness statement may live (default 21600)', intArg('--fresh-lifetime'))
    .option('--expires-days <n>', 'days until the root expires (status then warns; nothing blocks)', intArg('--expires-days'), 365)
    .requiredOption('--out <file>', 'where to write the root document')
    .addOption(jsonOption())
    .action(action(async (o) => {
      const [{ readKeyFile }, { initRoot }, { rootSummary, summaryLines }, { writeRootFile }] = await Promise.all([
        import('../../infra/release/keys.ts'), import('../../infra/formats/root.ts'), import('../root-holder/index.ts'), import('../../infra/formats/deployment-root.ts')])
      const signed = initRoot({
        rootKeys: await Promise.all((o.rootKey as string[]).map((f) => readKeyFile(f))), threshold: o.threshold,
        freshKeys: [await publicKeyOf(o.freshKey)], freshLifetimeS: o.freshLifetime, expiresDays: o.expiresDays,
      })
      await writeRootFile(o.out, signed)
      const s = rootSummary(signed.root)
      printResult(!!o.json, { file: o.out, ...s }, () => `${o.out}: ${summaryLines(s)}`)
    }))

  root
    .command('edit [rootfile]')
    .description('make the next version of a root: add a product, rotate or revoke a publish key, set minRev or release formats; signed by the given root keys')
    .option('--root-key <file>', 'a root key file that signs the new version; repeat (old and new keys when the root keys change)', collect)
    .option('--add-product <uuid>', 'add a product, with --publish-key')
    .option('--rotate <uuid>', "retire the product's publish key(s) after --last-rev and install --publish-key")
    .option('--publish-key <hex|file>', 'the publish key of --add-product or --rotate')
    .option('--last-rev <n>', 'with --rotate: the newest revision the retired key signed (the last good one after a compromise)', intArg('--last-rev'))
    .option('--last-release <sha256>', "with --rotate: that revision's manifest SHA-256")
    .option('--min-rev <product=n>', 'refuse revisions of the product below n (after a compromise); repeatable', collect)
    .option('--formats <product=list>', "release formats the product's publisher writes: 1 (format-1 manifests only), 1,2 (both, docs/formats.md §2.2) or 2 (format 2 only: no 40 000-file cap); repeatable", collect)
    .option('--rollout-key <product=hex|file>', "a key that may sign the product's rollout statements besides its publish key (issue 16); repeatable; PRODUCT= removes them", collect)
    .option('--halt-key <product=hex|file>', "the key that may sign only halts of the product's releases: the notary's --halt-key (issue 16); repeatable; PRODUCT= removes it", collect)
    .option('--set-root-key <hex|file>', 'replace the root keys with these; repeat (sign with old and new keys)', collect)
    .option('--threshold <n>', 'root signatures needed from now on', intArg('--threshold'))
    .option('--fresh-key <hex|file>', "a new notary key for freshness statements")
    .option('--expires-days <n>', 'days until the new version expires (default: keep the old expiry)', intArg('--expires-days'))
    .option('--out <file>', 'where to write the new version (with --dir: DIR/root.json)')
    .option('--dir <dir>', 'a deployment of `upswarm up`: edit DIR/root.json with DIR/auth/root-key.json and push the result to its cluster')
    .addOption(jsonOption())
    .action(action(async (rootfile: string | undefined, o) => {
      const [{ readKeyFile }, { deploymentRoles, editRoot, rootSummary, summaryLines }, { rootText }, { deploymentRootPaths, readRootFile, writeRootFile }] = await Promise.all([
        import('../../infra/release/keys.ts'), import('../root-holder/index.ts'), import('../../infra/formats/root.ts'), import('../../infra/formats/deployment-root.ts')])
      const paths = o.dir ? deploymentRootPaths(o.dir) : undefined
      const base = rootfile ?? paths?.rootFile
      const out = o.out ?? paths?.rootFile
      const keyFiles: string[] = o.rootKey ?? (paths ? [paths.rootKeyFile] : [])
      if (!base || !out || keyFiles.length === 0) throw new UpswarmError('UPSWARM_E_CONFIG', 'root edit: give ROOTFILE, --root-key FILE and --out FILE (or --dir DIR of an `up` deployment)')
      if (o.addProduct && o.rotate) throw new UpswarmError('UPSWARM_E_CONFIG', 'root edit: --add-product and --rotate each take their own --publish-key; run one edit for each')
      if ((o.addProduct || o.rotate) && !o.publishKey) throw new UpswarmError('UPSWARM_E_CONFIG', `root edit: --${o.addProduct ? 'add-product' : 'rotate'} needs --publish-key HEX`)
      if (o.rotate && o.lastRev === undefined) throw new UpswarmError('UPSWARM_E_CONFIG', 'root edit: --rotate needs --last-rev N, the newest revision the old key signed')
      const publishKey = o.publishKey ? await publicKeyOf(o.publishKey) : undefined
      const { signed: old } = await readRootFile(base)
      const next = editRoot(old.root, await Promise.all(keyFiles.map((f) => readKeyFile(f))), {
        ...(o.addProduct ? { addProducts: [{ product: o.addProduct, publishKey: publishKey! }] } : {}),
        ...(o.rotate ? { rotate: [{ product: o.rotate, publishKey: publishKey!, lastRev: o.lastRev, ...(o.lastRelease ? { lastRelease: o.lastRelease } : {}) }] } : {}),
        ...(o.minRev ? { minRev: (o.minRev as string[]).map((a) => productEq(a, '--min-rev')) } : {}),
        ...(o.formats ? { formats: (o.formats as string[]).map(productFormats) } : {}),
        ...(o.rolloutKey ? { rolloutKeys: await productKeys(o.rolloutKey, '--rollout-key') } : {}),
        ...(o.haltKey ? { haltKeys: await productKeys(o.haltKey, '--halt-key') } : {}),
        // An `up` deployment's notary halt key and console rollout key, for a product added there (unless given).
        ...(o.addProduct && paths ? await deploymentRoles(o.addProduct, publishKey!, {
          haltKey: !o.haltKey && existsSync(paths.haltKeyFile) ? paths.haltKeyFile : undefined,
          rolloutKey: !o.rolloutKey && existsSync(paths.rolloutKeyFile) ? paths.rolloutKeyFile : undefined,
        }) : {}),
        ...(o.setRootKey ? { rootKeys: await Promise.all((o.setRootKey as string[]).map(publicKeyOf)) } : {}),
        ...(o.threshold !== undefined ? { threshold: o.threshold } : {}),
        ...(o.freshKey ? { freshKeys: [await publicKeyOf(o.freshKey)] } : {}),
        ...(o.expiresDays !== undefined ? { expiresDays: o.expiresDays } : {}),
      })
      let pushed: { seq: number } | undefined
      if (o.dir) pushed = await withDeployment(o.dir, (nc) => import('../../infra/formats/meta-stream.ts').then((m) => m.appendRoot(nc, rootText(next), base)))
      await writeRootFile(out, next)
      const s = rootSummary(next.root)
      printResult(!!o.json, { file: out, ...(pushed ? { pushed: pushed.seq } : {}), ...s },
        () => `${out}: ${summaryLines(s)}${pushed ? `\npushed to UPSWARM_META (seq ${pushed.seq})` : ''}`)
    }))

  root
    .command('push <rootfile>')
    .description('append a root to UPSWARM_META (admin creds): it must be the next version of the newest root there')
    .addOption(natsOption()).addOption(credsOption()).addOption(tlsCaOption())
    .addOption(jsonOption())
    .action(action(async (rootfile: string, o) => {
      const [{ connectNats }, { appendRoot }, { readRootFile }] = await Promise.all([
        import('../../infra/nats/connect.ts'), import('../../infra/formats/meta-stream.ts'), import('../../infra/formats/deployment-root.ts')])
      const { text } = await readRootFile(rootfile)
      const nc = await connectNats(o.nats, 'upswarm-root-push', o)
      try {
        const r = await appendRoot(nc, text, rootfile)
        printResult(!!o.json, r, () => `root version ${r.version} appended to UPSWARM_META (seq ${r.seq})`)
      } finally {
        await nc.close()
      }
    }))

  root
    .command('show [rootfile]')
    .description('print a root (a file, or the newest on UPSWARM_META): version, expiry, root and fresh keys, products and their keys')
    .addOption(new Option('--nats <urls>', 'read the newest root of this cluster instead of a file').env('UPSWARM_NATS'))
    .addOption(credsOption()).addOption(tlsCaOption())
    .addOption(jsonOption())
    .action(action(async (rootfile: string | undefined, o) => {
      const [{ rootSummary, summaryLines }, { readRootFile }] = await Promise.all([import('../root-holder/index.ts'), import('../../infra/formats/deployment-root.ts')])
      let signed
      if (rootfile) {
        signed = (await readRootFile(rootfile)).signed
      } else {
        if (!o.nats) throw new UpswarmError('UPSWARM_E_CONFIG', 'root show: give ROOTFILE or --nats URLS')
        const [{ connectNats }, { newestRoot }] = await Promise.all([import('../../infra/nats/connect.ts'), import('../../infra/formats/meta-stream.ts')])
        const nc = await connectNats(o.nats, 'upswarm-root-show', o)
        try {
          const newest = await newestRoot(nc)
          if (!newest) throw new UpswarmError('UPSWARM_E_NOT_FOUND', 'UPSWARM_META holds no root yet (upswarm root push FILE)')
          signed = newest.signed
        } finally {
          await nc.close()
        }
      }
      const s = rootSummary(signed.root)
      printResult(!!o.json, s, () => summaryLines(s))
    }))
}

/** Runs `fn` with the admin identity of an `up` deployment (DIR/endpoints.json). */
async function withDeployment<T>(dir: string, fn: (nc: import('@nats-io/transport-node').NatsConnection) => Promise<T>): Promise<T> {
  const [{ readFile }, { join }, { connectNats }] = await Promise.all([import('node:fs/promises'), import('node:path'), import('../../infra/nats/connect.ts')])
  const file = join(dir, 'endpoints.json')
  const endpoints = JSON.parse(await readFile(file, 'utf8').catch(() => {
    throw new UpswarmError('UPSWARM_E_CONFIG', `${file} is missing: is \`upswarm up --dir ${dir}\` running?`)
  })) as { nats?: string[]; tlsCa?: string; creds?: { admin?: string } }
  if (!endpoints.nats || !endpoints.creds?.admin) throw new UpswarmError('UPSWARM_E_CONFIG', `${file} names no cluster or admin creds`)
  const nc = await connectNats(endpoints.nats.join(','), 'upswarm-root-edit', { creds: endpoints.creds.admin, tlsCa: endpoints.tlsCa })
  try {
    return await fn(nc)
  } finally {
    await nc.close()
  }
}
