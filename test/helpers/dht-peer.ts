// One swarm node in its own process, for the DHT connection test: joins TOPIC on the local DHT
// (announce and look up), says hello on every connection, and prints one JSON line per event:
//   {"event":"ready","key"}  {"event":"hello","from"}  {"event":"dropped","peer","reason"}
//   {"event":"looked-up"} (each lookup again of the topic)
// Usage: node --import tsx dht-peer.ts <bootstrap host:port> <topic hex> [client]. With `client`
// it only looks up (no announce). Ends on SIGTERM.
import NoiseSecretStream from '@hyperswarm/secret-stream'
import { randomBytes } from 'node:crypto'
import { parseBootstrap } from '../../infra/cluster/dht.ts'
import { SwarmTransport } from '../../infra/swarm/transport.ts'

const [bootstrap, topicHex, mode] = process.argv.slice(2)
if (!bootstrap || !topicHex) throw new Error('usage: dht-peer.ts <bootstrap> <topic hex>')
const say = (o: object): void => {
  process.stdout.write(JSON.stringify(o) + '\n')
}
const keyPair = NoiseSecretStream.keyPair(randomBytes(32))
const transport = new SwarmTransport({
  keyPair, bootstrap: parseBootstrap(bootstrap), dhtHost: '127.0.0.1', fleet: false,
  onConnection: (stream, info) => {
    let buffered = ''
    stream.on('data', (d: Buffer) => {
      buffered += d.toString()
      if (buffered.startsWith('hello ') && buffered.endsWith('\n')) say({ event: 'hello', from: buffered.slice(6, -1), via: info.via })
    })
    stream.write(Buffer.from(`hello ${keyPair.publicKey.toString('hex')}\n`))
  },
})
transport.on('refused', (peer, reason) => say({ event: 'dropped', peer, reason }))
transport.on('looked-up', () => say({ event: 'looked-up' }))
await transport.join(Buffer.from(topicHex, 'hex'), { server: mode !== 'client', client: true })
say({ event: 'ready', key: keyPair.publicKey.toString('hex') })
process.once('SIGTERM', () => {
  void transport.close().then(() => process.exit(0))
})
