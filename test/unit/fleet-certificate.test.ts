import { describe, expect, it } from 'vitest'
import { randomBytes } from 'node:crypto'
import NoiseSecretStream from '@hyperswarm/secret-stream'
import {
  FLEET_CERT_VERSION, createFleetKey, decodeCertificate, encodeCertificate, issueCertificate, privateProductId, productTopic, verifyCertificate,
} from '../../infra/swarm/fleet.ts'
import { topicFor } from '../../infra/swarm/transport.ts'

const fleet = createFleetKey()
const noise = NoiseSecretStream.keyPair()
const NOW = 1_900_000_000
const cert = issueCertificate(fleet, { name: 'client-7', noiseKey: noise.publicKey, expires: NOW + 60 })
const bytes = encodeCertificate(cert)

describe('fleet certificate — encoding and checks', () => {
  it('fleet certificate — encodes byte by byte as docs/protocol.md §5 says and decodes back', () => {
    expect(bytes.length).toBe(1 + 32 + 1 + 8 + 32 + 8 + 64)
    expect(bytes[0]).toBe(FLEET_CERT_VERSION)
    expect(bytes.subarray(1, 33).equals(fleet.publicKey)).toBe(true)
    expect(bytes[33]).toBe(8)
    expect(bytes.subarray(34, 42).toString()).toBe('client-7')
    expect(bytes.subarray(42, 74).equals(noise.publicKey)).toBe(true)
    expect(bytes.readBigUInt64LE(74)).toBe(BigInt(NOW + 60))
    expect(decodeCertificate(bytes)).toEqual(cert)
  })

  it('fleet certificate — verifies for its Noise key before expiry', () => {
    expect(verifyCertificate(bytes, { fleet: fleet.publicKey, remoteNoiseKey: noise.publicKey, nowSeconds: NOW }).name).toBe('client-7')
  })

  it('fleet certificate — refused: expired, another fleet, another Noise key, a flipped byte, a bad length or version', () => {
    const check = (b: Uint8Array, over: Partial<Parameters<typeof verifyCertificate>[1]> = {}) =>
      () => verifyCertificate(b, { fleet: fleet.publicKey, remoteNoiseKey: noise.publicKey, nowSeconds: NOW, ...over })
    expect(check(bytes, { nowSeconds: NOW + 60 })).toThrow(/expired/)
    expect(check(bytes, { fleet: createFleetKey().publicKey })).toThrow(/another fleet/)
    expect(check(bytes, { remoteNoiseKey: NoiseSecretStream.keyPair().publicKey })).toThrow(/another Noise key/)
    for (const at of [34, 50, 80, 100]) {
      const flipped = Buffer.from(bytes)
      flipped[at]! ^= 1
      expect(check(flipped)).toThrow(/bad signature/)
    }
    expect(check(bytes.subarray(0, bytes.length - 1))).toThrow(/malformed/)
    expect(check(Buffer.concat([bytes, Buffer.alloc(1)]))).toThrow(/malformed/)
    const v2 = Buffer.from(bytes)
    v2[0] = 2
    expect(check(v2)).toThrow(/version 2/)
    for (const e of [check(bytes, { nowSeconds: NOW + 60 }), check(v2)]) expect(e).toThrow(expect.objectContaining({ code: 'UPSWARM_E_SIGNATURE' }))
  })

  it('fleet certificate — expiry 0 never expires', () => {
    const forever = encodeCertificate(issueCertificate(fleet, { name: 'server-1', noiseKey: noise.publicKey, expires: 0 }))
    expect(verifyCertificate(forever, { fleet: fleet.publicKey, remoteNoiseKey: noise.publicKey, nowSeconds: 2 ** 40 }).expires).toBe(0)
  })

  it('private topics and tracker ids — depend on the fleet secret, never equal the public ones, and look like product ids', () => {
    const product = '0b6f0b9c-4a0e-4c55-9d5e-3d7d2c1b8a11'
    const s1 = randomBytes(32)
    const s2 = randomBytes(32)
    expect(productTopic(product, 3)).toEqual(topicFor(product, 3))
    expect(productTopic(product, 3, s1)).not.toEqual(topicFor(product, 3))
    expect(productTopic(product, 3, s1)).not.toEqual(productTopic(product, 3, s2))
    expect(productTopic(product, undefined, s1)).not.toEqual(productTopic(product, 3, s1))
    expect(privateProductId(s1, product)).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
    expect(privateProductId(s1, product)).not.toBe(privateProductId(s2, product))
  })
})
