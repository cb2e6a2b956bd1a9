// TLS for the embedded cluster's client ports (issue 10, item 2): a CA made once by `up`, and a
// certificate for the addresses the NATS nodes listen on, signed by it. Clients trust the CA
// file (`--tls-ca`). Keys come from node:crypto; node-forge only writes the X.509 structures.
import { generateKeyPairSync, randomBytes } from 'node:crypto'
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

function newCert(publicKey: forge.pki.PublicKey, years: number): forge.pki.Certificate {
  const cert = forge.pki.createCertificate()
  cert.publicKey = publicKey
  // Positive serial: clear the top bit of a random 16-byte value.
  const serial = randomBytes(16)
  serial[0]! &= 0x7f
  cert.serialNumber = serial.toString('hex')
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
