// Issue 14 item 4: the `upswarm/site` channel over real swarm connections on 127.0.0.1. Each side
// tells its locality label in the channel's open handshake; a peer of an earlier release (no such
// channel) or one that tells no label has no site, and a malformed label is ignored, not an error.
import { afterEach, describe, expect, it } from 'vitest'
import type NoiseSecretStream from '@hyperswarm/secret-stream'
import b4a from 'b4a'
import c from 'compact-encoding'
import Protomux from 'protomux'
import { exchangeSite, siteOf } from '../../infra/swarm/site-channel.ts'
import { derivedSite, siteLabel } from '../../infra/swarm/site-label.ts'
import { makeNode, type Node } from './swarm-fixtures.ts'

const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f()
})

/** A node that opens the site channel with `site` on each connection (or none at all: `null`), and what it heard. */
function node(site: string | undefined | null): Node & { heard: Promise<string | undefined>; streams: NoiseSecretStream[] } {
  let hear!: (s: string | undefined) => void
  const heard = new Promise<string | undefined>((resolve) => { hear = resolve })
  const streams: NoiseSecretStream[] = []
  const n = makeNode((stream) => {
    streams.push(stream)
    if (site !== null) exchangeSite(stream, site, hear)
  })
  cleanups.push(() => n.transport.close())
  return Object.assign(n, { heard, streams })
}

async function connect(a: Node, b: Node): Promise<void> {
  const addr = await b.transport.listen('127.0.0.1')
  await a.transport.dial(addr.host, addr.port)
  await Promise.all([a.nextConnection(), b.nextConnection()])
}

describe('site channel', () => {
  it('site — two peers tell each other their sites on connecting; a peer that tells none has none', async () => {
    const east = node('eu-east')
    const west = node('10.1.2.0/24')
    await connect(east, west)
    expect(await east.heard).toBe('10.1.2.0/24')
    expect(await west.heard).toBe('eu-east')

    const plain = node(undefined)
    const other = node('eu-east')
    await connect(plain, other)
    expect(await plain.heard).toBe('eu-east')
    expect(await other.heard).toBeUndefined()
  })

  it('site — a peer of an earlier release opens no site channel: the connection and its other channels work, and no site is heard', async () => {
    const old = node(null)
    const current = node('eu-east')
    await connect(current, old)
    let heard = false
    void current.heard.then(() => { heard = true })
    // Another channel on the same connection opens and carries a message after the site channel
    // was offered and not answered.
    const [a, b] = [current.streams[0]!, old.streams[0]!]
    const got = new Promise<string>((resolve) => {
      const ch = Protomux.from(b).createChannel({ protocol: 'test/echo' })!
      ch.addMessage({ encoding: c.string, onmessage: (m: string) => resolve(m) })
      ch.open()
    })
    const ch = Protomux.from(a).createChannel({ protocol: 'test/echo' })!
    const msg = ch.addMessage({ encoding: c.string })
    ch.open()
    msg.send('still here')
    expect(await got).toBe('still here')
    expect(heard).toBe(false)
  })

  it('site — labels: what a handshake may tell, what --site accepts, and what auto derives', () => {
    expect(siteOf(b4a.from('eu-west'))).toBe('eu-west')
    expect(siteOf(b4a.from(''))).toBeUndefined()
    expect(siteOf(b4a.from('no spaces'))).toBeUndefined()
    expect(siteOf(b4a.alloc(65, 'a'))).toBeUndefined()
    expect(siteLabel(undefined)).toBeUndefined()
    expect(siteLabel('dc-1')).toBe('dc-1')
    expect(() => siteLabel('two words')).toThrow(/--site "two words": a site label is 1 to 64 letters, digits/)
    expect(derivedSite({ lo: [{ family: 'IPv4', internal: true, address: '127.0.0.1' }], eth0: [{ family: 'IPv6', internal: false, address: 'fe80::1' }, { family: 'IPv4', internal: false, address: '10.20.30.40' }] })).toBe('10.20.30.0/24')
    expect(derivedSite({ lo: [{ family: 'IPv4', internal: true, address: '127.0.0.1' }] })).toBeUndefined()
  })
})
