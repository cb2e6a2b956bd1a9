// Issue 11 item 4 (R-STATUS-3): administrators read the alert stream with `upswarm alerts`: what
// clients and servers sent, by product and sender, and with --follow the new ones as they come.
import { execFile, spawn } from 'node:child_process'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { describe, expect, it } from 'vitest'
import { jetStreamAlertSink } from '../../infra/nats/alert-sink.ts'
import { PROJECT_ROOT } from '../../infra/project-root.ts'
import { clusterInfo, issueCreds, natsUrls, newProduct, roleConnection } from '../helpers/cluster.ts'

const CLI = join(PROJECT_ROOT, 'bin', 'upswarm.cjs')

describe('upswarm alerts', () => {
  it('alerts — lists what a client sent for a product, names the sender, and --follow prints a new alert as it arrives', async () => {
    const env = { ...process.env, UPSWARM_NATS: natsUrls().join(','), UPSWARM_CREDS: await issueCreds({ kind: 'admin', name: 'admin' }), UPSWARM_TLS_CA: clusterInfo().auth.caFile }
    const product = newProduct()
    const client = await roleConnection({ kind: 'client', name: 'alerts-c1' })
    try {
      const sink = jetStreamAlertSink(client)
      await sink.publish({ product, clientId: 'c1', path: 'etc/app.ini', rev: 1, targetRev: 2 })
      const listed = await new Promise<string>((resolve, reject) => {
        execFile(process.execPath, [CLI, 'alerts', '--product', product, '--json'], { env, timeout: 30_000 }, (err, stdout, stderr) => err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout))
      })
      const alerts = listed.trim().split('\n').map((l) => JSON.parse(l) as { product: string; from: string; body: { path: string } })
      expect(alerts).toEqual([expect.objectContaining({ product, from: 'alerts-c1', body: expect.objectContaining({ path: 'etc/app.ini', targetRev: 2 }) })])

      const follow = spawn(process.execPath, [CLI, 'alerts', '--product', product, '--follow'], { env, stdio: ['ignore', 'pipe', 'pipe'] })
      // What the follower wrote to stderr goes into any failure, and its exit fails the wait at once.
      let stderr = ''
      follow.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d })
      const exited = new Promise<never>((_, reject) => follow.once('exit', (code, signal) => reject(new Error(`the follower exited (${code ?? signal}) before printing the alert:\n${stderr}`))))
      exited.catch(() => {})
      try {
        const lines = createInterface({ input: follow.stdout })[Symbol.asyncIterator]()
        const nextLine = async (): Promise<string> => {
          let timeout: NodeJS.Timeout | undefined
          const timer = new Promise<never>((_, reject) => { timeout = setTimeout(() => reject(new Error(`no alert line within 20 s; the follower's stderr:\n${stderr}`)), 20_000) })
          try {
            return (await Promise.race([lines.next(), timer, exited])).value as string
          } finally {
            clearTimeout(timeout)
          }
        }
        // The earlier alert first: the follower is reading the stream; then a new one arrives live.
        expect(await nextLine()).toMatch(/alerts-c1\s+etc\/app.ini: changed by hand and out of date \(at r1, r2 installing\)/)
        await sink.publish({ product, clientId: 'c1', path: 'bin/tool', rev: 2, targetRev: 3 })
        expect(await nextLine()).toMatch(/alerts-c1\s+bin\/tool: changed by hand and out of date \(at r2, r3 installing\)/)
      } finally {
        follow.kill('SIGTERM')
      }
    } finally {
      await client.close()
    }
  })
})
