// infra/swarm/feed-key.ts works out the release feed's keys without loading Hypercore (issue 13
// item 5); they must be Hypercore's own, or a lazy daemon would answer no peer's feed channel.
import Hypercore from 'hypercore'
import { describe, expect, it } from 'vitest'
import { feedKeys } from '../../infra/swarm/feed-key.ts'
import { generatePublisherKey } from '../../infra/release/keys.ts'

describe('feed keys', () => {
  it('are the key and discovery key Hypercore gives the publisher key', () => {
    for (let i = 0; i < 3; i++) {
      const { publicKey } = generatePublisherKey()
      const key = Hypercore.key(Buffer.from(publicKey, 'hex'))
      const ours = feedKeys(publicKey)
      expect(ours.key.toString('hex')).toBe(key.toString('hex'))
      expect(ours.discoveryKey.toString('hex')).toBe(Hypercore.discoveryKey(key).toString('hex'))
    }
  })
})
