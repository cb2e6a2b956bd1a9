// What docs/ops.md tells operators, checked through the same JetStream API calls the `nats` CLI
// makes (`nats stream ls`, `nats consumer report`), with the identities the page names.
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { jetstreamManager } from '@nats-io/jetstream'
import { PROJECT_ROOT } from '../../infra/cluster/nats-server-bin.ts'
import type { NatsConnection } from '../../infra/nats/connect.ts'
import { jetStreamOptionsOf } from '../../infra/nats/identity.ts'
import { roleConnection, testConnection } from '../helpers/cluster.ts'

/** The names in the first column of docs/ops.md's "JetStream names" table: stream and bucket names. */
async function documentedNames(): Promise<{ streams: string[]; buckets: string[] }> {
  const page = await readFile(join(PROJECT_ROOT, 'docs', 'ops.md'), 'utf8')
  const table = page.split('## JetStream names')[1]!.split('\n## ')[0]!
  const rows = table.split('\n').filter((l) => /^\| (stream|object store|KV bucket) \|/.test(l))
  const name = (l: string): string => /`([^`]+)`/.exec(l.split('|')[2]!)![1]!
  return {
    streams: rows.filter((l) => l.startsWith('| stream')).map(name),
    buckets: [
      ...rows.filter((l) => l.startsWith('| object store')).map((l) => `OBJ_${name(l)}`),
      ...rows.filter((l) => l.startsWith('| KV bucket')).map((l) => `KV_${name(l)}`),
    ],
  }
}

describe('ops doc', () => {
  let admin: NatsConnection
  let client: NatsConnection
  beforeAll(async () => {
    admin = await testConnection('ops-doc-admin')
    client = await roleConnection({ kind: 'client', name: 'ops-doc-client' })
  })
  afterAll(async () => {
    await admin?.close()
    await client?.close()
  })

  it('ops — `nats stream ls` with the admin creds lists every stream and bucket the page documents; a client may not list them', async () => {
    const { streams, buckets } = await documentedNames()
    expect(streams).toEqual(expect.arrayContaining(['UPSWARM_RELEASES', 'UPSWARM_RELEASES_READ', 'UPSWARM_ALERTS', 'UPSWARM_META', 'UPSWARM_FRESH']))
    const jsm = await jetstreamManager(admin)
    const names: string[] = []
    for await (const n of jsm.streams.names()) names.push(n)
    // The peer bucket appears once a tracker has started; the others exist from `up` on.
    expect(names).toEqual(expect.arrayContaining([...streams, ...buckets.filter((b) => !b.startsWith('KV_'))]))
    const clientJsm = await jetstreamManager(client, { checkAPI: false })
    await expect((async () => {
      for await (const n of clientJsm.streams.names()) void n
    })()).rejects.toMatchObject({ cause: { name: 'PermissionViolationError' } })
  })

  it('ops — `nats consumer report UPSWARM_RELEASES` (admin) lists consumers; the readers\' mirror has the release stream\'s sequences', async () => {
    const jsm = await jetstreamManager(admin)
    const consumers = await jsm.consumers.list('UPSWARM_RELEASES').next()
    expect(Array.isArray(consumers)).toBe(true)
    const [origin, mirror] = await Promise.all([jsm.streams.info('UPSWARM_RELEASES'), jsm.streams.info('UPSWARM_RELEASES_READ')])
    expect(mirror.config.mirror?.name).toBe('UPSWARM_RELEASES')
    expect(origin.config.republish?.dest).toBe('upswarm.released.>')
    expect(origin.config.allow_direct).toBe(true)
  })

  it('ops — `nats stream view UPSWARM_META` / `stream get UPSWARM_FRESH`: roots kept forever, one fresh statement per product, both readable by a client', async () => {
    const jsm = await jetstreamManager(admin)
    const [meta, fresh] = await Promise.all([jsm.streams.info('UPSWARM_META'), jsm.streams.info('UPSWARM_FRESH')])
    expect(meta.config).toMatchObject({ subjects: ['upswarm.meta.>'], deny_delete: true, deny_purge: true, allow_direct: true, max_msg_size: 1024 * 1024 })
    expect(meta.config.republish?.dest).toBe('upswarm.signed.>')
    expect(fresh.config).toMatchObject({ subjects: ['upswarm.fresh.>'], max_msgs_per_subject: 1, allow_direct: true, max_msg_size: 4096 })
    // The page's client reads, imported into CLIENTS under its own API prefix: direct gets of both
    // (no message yet for an unknown product), and no stream info.
    const clientJsm = await jetstreamManager(client, { checkAPI: false, ...jetStreamOptionsOf(client) })
    expect(jetStreamOptionsOf(client)).toEqual({ apiPrefix: '$JS.UPSWARM.API' })
    expect(await clientJsm.direct.getMessage('UPSWARM_FRESH', { last_by_subj: 'upswarm.fresh.00000000-0000-4000-8000-000000000000' })).toBeNull()
    await clientJsm.direct.getMessage('UPSWARM_META', { seq: 1, next_by_subj: 'upswarm.meta.root' })
    await expect(clientJsm.streams.info('UPSWARM_FRESH')).rejects.toMatchObject({ cause: { name: 'PermissionViolationError' } })
  })
})
