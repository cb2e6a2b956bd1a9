// TLS for the embedded cluster's client ports (issue 10, item 2): a CA made once by `up`, and a
// certificate for the addresses the NATS nodes listen on, signed by it. Clients trust the CA
// file (`--tls-ca`). Keys come from node:crypto; node-forge only writes the X.509 structures.
import { generateKeyPairSync, randomBytes, sign } from 'node:crypto'
import forge from 'node-forge'

export interface PemPair {
  cert: string
  key: string
}

const YEAR_MS = 365 * 24 * 60 * 60 * 1000

function rsaKey(): { forgeKey: forge.pki.rsa.PrivateKey; pem: string } {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
  return { forgeKey: forge.pki.privateKeyFromPem(pem) as forge.pki.rsa.PrivateKey, pem }
}

function publicOf(key: forge.pki.rsa.PrivateKey): forge.pki.rsa.PublicKey {
  return forge.pki.setRsaPublicKey(key.n, key.e)
}

/**
 * A random 16-byte serial that DER encodes as written: the top bit clear (positive) and the first
 * byte never zero. A leading 0x00 before a byte under 0x80 is padding DER forbids, and OpenSSL refuses
 * such a certificate ("illegal padding"): with only the top bit cleared, 1 in 512 serials was one.
 */
export function positiveSerial(): Buffer {
  const serial = randomBytes(16)
  serial[0] = (serial[0]! & 0x7f) | 0x40
  return serial
}

function newCert(publicKey: forge.pki.PublicKey, years: number): forge.pki.Certificate {
  const cert = forge.pki.createCertificate()
  cert.publicKey = publicKey
  cert.serialNumber = positiveSerial().toString('hex')
  cert.validity.notBefore = new Date(Date.now() - 60_000)
  cert.validity.notAfter = new Date(Date.now() + years * YEAR_MS)
  return cert
}

/** A self-signed certificate authority for one deployment. */
export function createCa(name: string): PemPair {
  const { forgeKey, pem } = rsaKey()
  const cert = newCert(publicOf(forgeKey), 10)
  const subject = [{ name: 'commonName', value: name }]
  cert.setSubject(subject)
  cert.setIssuer(subject)
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ])
  cert.sign(forgeKey, forge.md.sha256.create())
  return { cert: forge.pki.certificateToPem(cert), key: pem }
}

/**
 * A server certificate for the given host names and IP addresses, signed by the CA; with `client`,
 * also good as a client certificate (a NATS route dials its peers with it: mutual TLS).
 */
export function issueServerCert(ca: PemPair, hosts: string[], opts: { client?: boolean } = {}): PemPair {
  const caCert = forge.pki.certificateFromPem(ca.cert)
  const caKey = forge.pki.privateKeyFromPem(ca.key)
  const { forgeKey, pem } = rsaKey()
  const cert = newCert(publicOf(forgeKey), 2)
  cert.setSubject([{ name: 'commonName', value: hosts[0] ?? 'localhost' }])
  cert.setIssuer(caCert.subject.attributes)
  const isIp = (h: string): boolean => /^[\d.]+$/.test(h) || h.includes(':')
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true, ...(opts.client ? { clientAuth: true } : {}) },
    { name: 'subjectAltName', altNames: hosts.map((h) => (isIp(h) ? { type: 7, ip: h } : { type: 2, value: h })) },
  ])
  cert.sign(caKey, forge.md.sha256.create())
  return { cert: forge.pki.certificateToPem(cert), key: pem }
}

/** A DER TLV: tag, length, content. */
function der(tag: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content)
  const n = body.length
  const len = n < 0x80 ? Buffer.from([n]) : n < 0x100 ? Buffer.from([0x81, n]) : Buffer.from([0x82, n >> 8, n & 0xff])
  return Buffer.concat([Buffer.from([tag]), len, body])
}
const derOid = (...bytes: number[]): Buffer => der(0x06, Buffer.from(bytes))
/** RFC 5280 4.1.2.5: UTCTime up to 2049, GeneralizedTime from 2050. */
const derTime = (d: Date): Buffer => {
  const digits = d.toISOString().replace(/[-:T]/g, '').slice(0, 14)
  return d.getUTCFullYear() < 2050 ? der(0x17, Buffer.from(digits.slice(2) + 'Z')) : der(0x18, Buffer.from(digits + 'Z'))
}
/** ecdsa-with-SHA256 (1.2.840.10045.4.3.2). */
const ECDSA_SHA256 = der(0x30, derOid(0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02))

/**
 * Issue 14 item 2: a self-signed certificate for a server's bulk port, on an ECDSA P-256 key (made
 * in about a millisecond, where an RSA key takes 0.1–1 s here). Nothing vouches for it but the
 * server itself: clients learn it from the server's answer over authenticated NATS and trust
 * exactly that certificate (pinned by its SHA-256 fingerprint), so no CA key has to reach the server.
 * node-forge signs RSA certificates only, so its few DER fields are written here.
 */
export function selfSignedCert(name: string): PemPair {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const serial = positiveSerial()
  const dn = der(0x30, der(0x31, der(0x30, derOid(0x55, 0x04, 0x03), der(0x0c, Buffer.from(name, 'utf8')))))
  const tbs = der(0x30,
    der(0xa0, der(0x02, Buffer.from([2]))), // v3
    der(0x02, serial),
    ECDSA_SHA256,
    dn,
    der(0x30, derTime(new Date(Date.now() - 60_000)), derTime(new Date(Date.now() + 10 * YEAR_MS))),
    dn,
    publicKey.export({ type: 'spki', format: 'der' }),
  )
  const signature = sign('sha256', tbs, { key: privateKey, dsaEncoding: 'der' })
  const cert = der(0x30, tbs, ECDSA_SHA256, der(0x03, Buffer.from([0]), signature))
  const pem = `-----BEGIN CERTIFICATE-----\n${cert.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n?$/, '\n')}-----END CERTIFICATE-----\n`
  return { cert: pem, key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() }
}
