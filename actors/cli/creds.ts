// `upswarm creds`: the identities of a deployment made by `up` (issue 10, item 1). One identity
// per client machine, minted from the account's signing key; revoked by pushing a new account
// JWT to the running cluster, so no server restarts and no other identity changes.
import type { Command } from 'commander'
import { action, intArg, jsonOption } from './common.ts'
import { printResult } from './output.ts'

const DAY_S = 24 * 60 * 60

export function registerCredsCommands(program: Command): void {
  const creds = program.command('creds').description("identities of a deployment: issue, revoke and list (the directory `up --dir` made)")

  // Issue 17: a deployment across hosts shares one set of identities; made once, before any host's `up`.
  creds
    .command('init')
    .description("make a deployment's identities and CA in DIR/auth (what `up` makes on first start), to copy to each host (`up --auth`)")
    .requiredOption('--dir <dir>', 'the deployment directory')
    .addOption(jsonOption())
    .action(action(async (o) => {
      const [{ Authority }, { join }] = await Promise.all([import('../../infra/auth/authority.ts'), import('node:path')])
      const authority = await Authority.open(join(o.dir, 'auth'))
      printResult(!!o.json, { dir: authority.paths.dir, ca: authority.paths.caFile },
        () => `identities in ${authority.paths.dir} (CA ${authority.paths.caFile}); copy the directory to each host and start it with \`up --auth DIR\``)
    }))

  creds
    .command('issue')
    .description('mint the NATS credentials of one client machine (or a role) and write its creds file')
    .requiredOption('--dir <dir>', 'the deployment directory (`up --dir`); its auth/ holds the keys')
    .option('--client <name>', 'a client machine: may read releases, ask the proxy and tracker, alert and announce under its own name only')
    .option('--role <kind>', 'a role instead: admin, publisher, server, proxy, tracker, notary, leaf (a site\'s leaf link; --name: the site\'s JetStream domain)')
    .option('--name <name>', 'with --role: the identity name (a server: its id)')
    .option('--core-domain <name>', "with --role leaf: the core's JetStream domain, the only one the site's link may ask for consumers")
    .option('--ttl-days <n>', 'expiry in days (clients default 180; roles never expire unless given)', intArg('--ttl-days'))
    .option('--out <file>', 'where to write the creds file (default: DIR/auth/creds/KIND-NAME.creds)')
    .option('--swarm-identity-out <file>', 'clients and servers: where to write the swarm identity file (default: DIR/auth/creds/swarm-KIND-NAME.json)')
    .addOption(jsonOption())
    .action(action(async (o) => {
      const [{ Authority }, { IDENTITY_KINDS }, { UpswarmError }, { join }] = await Promise.all([
        import('../../infra/auth/authority.ts'), import('../../infra/nats/identity.ts'), import('../../infra/errors.ts'), import('node:path')])
      if (!!o.client === !!o.role) throw new UpswarmError('UPSWARM_E_CONFIG', 'creds issue: give either --client NAME or --role KIND --name NAME')
      const kind = o.client ? 'client' : String(o.role)
      if (!(IDENTITY_KINDS as readonly string[]).includes(kind)) throw new UpswarmError('UPSWARM_E_CONFIG', `--role ${kind}: choose from ${IDENTITY_KINDS.join(', ')}`)
      const name = String(o.client ?? o.name ?? kind)
      const authority = await Authority.load(join(o.dir, 'auth'))
      const issued = await authority.issue({ kind: kind as (typeof IDENTITY_KINDS)[number], name }, {
        ...(o.ttlDays !== undefined ? { ttlSeconds: o.ttlDays * DAY_S } : {}), ...(o.out ? { file: o.out } : {}),
        ...(o.coreDomain ? { coreDomain: (await import('../launcher/hosts.ts')).domainArg('--core-domain', String(o.coreDomain)) } : {}),
      })
      const expires = issued.expires ? new Date(issued.expires * 1000).toISOString() : null
      // Private swarms admit members only: clients and servers get a certified Noise key (docs/protocol.md §5).
      const swarm = kind === 'client' || kind === 'server'
        ? await authority.issueSwarmIdentity({ kind, name }, {
          ...(o.ttlDays !== undefined ? { ttlSeconds: o.ttlDays * DAY_S } : {}), ...(o.swarmIdentityOut ? { file: o.swarmIdentityOut } : {}),
        })
        : null
      printResult(!!o.json, { kind, name, file: issued.file, publicKey: issued.publicKey, expires, swarmIdentity: swarm?.file ?? null },
        () => `${kind} ${name}: ${issued.file} (user ${issued.publicKey}${expires ? `, expires ${expires}` : ''})${swarm ? `; swarm identity ${swarm.file}` : ''}`)
    }))

  creds
    .command('revoke <name>')
    .description('revoke every credential ever issued to NAME, at once, on the running cluster')
    .requiredOption('--dir <dir>', 'the deployment directory (`up --dir`)')
    .option('--role <kind>', 'the kind of identity (default client)', 'client')
    // The deployment's own endpoints.json names its cluster and CA; these flags override it.
    .option('--nats <urls>', 'NATS servers, comma-separated (default: DIR/endpoints.json)')
    .option('--tls-ca <file>', "CA of the NATS servers' certificates (default: DIR/endpoints.json)")
    .addOption(jsonOption())
    .action(action(async (name: string, o) => {
      const [{ Authority }, { pushAccount }, { connectNats }, { readFile }, { join }, { IDENTITY_KINDS }] = await Promise.all([
        import('../../infra/auth/authority.ts'), import('../../infra/auth/push.ts'), import('../../infra/nats/connect.ts'),
        import('node:fs/promises'), import('node:path'), import('../../infra/nats/identity.ts')])
      const authority = await Authority.load(join(o.dir, 'auth'))
      const endpoints = JSON.parse(await readFile(join(o.dir, 'endpoints.json'), 'utf8').catch(() => '{}')) as { nats?: string[]; tlsCa?: string }
      const kind = String(o.role) as (typeof IDENTITY_KINDS)[number]
      const { jwts, revoked } = await authority.revoke(kind, name)
      // The system account's user pushes the account: the only identity the servers take claims from.
      const sys = await connectNats(o.nats ?? endpoints.nats, 'upswarm-creds-revoke', { creds: await authority.systemCredsFile(), tlsCa: o.tlsCa ?? endpoints.tlsCa })
      try {
        for (const jwt of jwts) await pushAccount(sys, jwt)
      } finally {
        await sys.close()
      }
      printResult(!!o.json, { kind, name, revoked }, () => `${kind} ${name}: ${revoked.length} credential(s) revoked on the cluster`)
    }))

  creds
    .command('ls')
    .description('every identity issued, newest last, with expiry and whether it is revoked')
    .requiredOption('--dir <dir>', 'the deployment directory (`up --dir`)')
    .addOption(jsonOption())
    .action(action(async (o) => {
      const [{ Authority }, { join }] = await Promise.all([import('../../infra/auth/authority.ts'), import('node:path')])
      const authority = await Authority.load(join(o.dir, 'auth'))
      const rows = authority.issued.map((i) => ({ ...i, account: authority.accountNameOf(i), revoked: authority.isRevoked(i.publicKey, i.issuedAt) }))
      const keys = authority.accountPublicKeys
      printResult(!!o.json, rows, () => [
        ...rows.map((r) => `${r.kind.padEnd(9)} ${r.name.padEnd(20)} ${r.account.padEnd(7)} ${r.publicKey} issued ${new Date(r.issuedAt * 1000).toISOString()}` +
          `${r.expires ? ` expires ${new Date(r.expires * 1000).toISOString()}` : ''}${r.revoked ? ' REVOKED' : ''}`),
        `accounts: UPSWARM ${keys.upswarm}, CLIENTS ${keys.clients}`,
      ].join('\n'))
    }))
}
