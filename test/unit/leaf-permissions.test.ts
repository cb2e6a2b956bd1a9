// Issue 17: a site's leaf identity, pinned to the core's JetStream domain, may ask for nothing but
// ephemeral consumers of the streams a site mirrors, and hear nothing but JetStream's replication
// subjects (docs/deploy.md, "Sites").
import { describe, expect, it } from 'vitest'
import { permissionsFor } from '../../infra/auth/permissions.ts'
import { SITE_MIRRORED, SITE_SOURCED } from '../../infra/nats/names.ts'

describe('leaf permissions', () => {
  it('leaf — pinned to the core domain: consumer creation of the mirrored streams, their flow control and the replication subjects, nothing else', () => {
    const p = permissionsFor({ kind: 'leaf', name: 'site-a' }, { coreDomain: 'core' })
    expect(p.pub.allow.sort()).toEqual([
      ...SITE_MIRRORED.flatMap((s) => [`$JS.core.API.CONSUMER.CREATE.${s}`, `$JS.FC.${s}.>`]), '$JSC.R.>', '$JS.S.>',
    ].sort())
    expect(p.sub.allow.sort()).toEqual(['$JS.M.>', '$JSC.R.>', '$JS.site-a.API.>', ...SITE_SOURCED.map((s) => `$JS.FC.${s}.>`)].sort())
    // No wildcard in the domain token, no durable form (a further token), no stream operation.
    expect(p.pub.allow.filter((s) => s.startsWith('$JS.') && s.includes('.API.') && !s.startsWith('$JS.core.API.CONSUMER.CREATE.'))).toEqual([])
    expect(p.pub.allow.some((s) => /\.CONSUMER\.CREATE\.[^.]+\.(>|\*)/.test(s))).toBe(false)
  })

  it('leaf — issued without a core domain, the domain token is a wildcard', () => {
    expect(permissionsFor({ kind: 'leaf', name: 'site-a' }).pub.allow).toContain(`$JS.*.API.CONSUMER.CREATE.${SITE_MIRRORED[0]}`)
  })
})
