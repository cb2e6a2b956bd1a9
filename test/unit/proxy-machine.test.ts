// Issue 12 item 1: the proxy's top level as a statechart — heartbeats, service and the doors it
// was asked for opened in order; a door that cannot open closes what was opened and ends in
// `failed` naming the step; stop closes everything and says stopped.
import { describe, expect, it } from 'vitest'
import { createActor, fromPromise, waitFor } from 'xstate'
import { proxyMachine, type ProxyInput } from '../../machines/proxy.machine.ts'

/** A proxy machine with stub steps; a server is heard as soon as it listens, unless `silent`. */
function harness(input: Partial<ProxyInput>, sftpFails = false, silent = false) {
  const log: string[] = []
  const step = (name: string) => fromPromise<void, void>(async () => {
    log.push(name)
  })
  const machine = proxyMachine.provide({
    actors: {
      followHeartbeats: step('heartbeats'),
      startService: step('service'),
      openGateway: fromPromise(async () => {
        log.push('gateway')
        return { url: 'http://127.0.0.1:8080' }
      }),
      openSftp: fromPromise(async () => {
        log.push('sftp')
        if (sftpFails) throw new Error('listen EADDRINUSE 127.0.0.1:2222')
        return { url: 'sftp://127.0.0.1:2222' }
      }),
      closeAll: step('close all'),
    },
  })
  const actor = createActor(machine, { input: { id: 'p1', gateway: false, sftp: false, ...input } })
  const emitted: unknown[] = []
  actor.on('*', (e) => emitted.push(e))
  actor.subscribe((s) => {
    if (s.matches('hearingServers') && !silent) {
      log.push('heard')
      actor.send({ type: 'servers.heard' })
    }
  })
  actor.start()
  return { actor, log, emitted }
}

describe('proxy machine', () => {
  it('proxy — joins the service only once a server was heard, or once a server had time to beat (no early "no healthy server"); stop while listening closes', async () => {
    const heard = harness({ hearMs: 600_000 })
    await waitFor(heard.actor, (s) => s.matches('serving'))
    expect(heard.log).toEqual(['heartbeats', 'heard', 'service'])

    // Nobody beats: the service starts when the listening time is up (short here), all the same.
    const alone = harness({ hearMs: 20 }, false, true)
    await waitFor(alone.actor, (s) => s.matches('hearingServers'))
    expect(alone.log).toEqual(['heartbeats'])
    await waitFor(alone.actor, (s) => s.matches('serving'))
    expect(alone.log).toEqual(['heartbeats', 'service'])

    const stopped = harness({ hearMs: 600_000 }, false, true)
    await waitFor(stopped.actor, (s) => s.matches('hearingServers'))
    stopped.actor.send({ type: 'stop' })
    expect((await waitFor(stopped.actor, (x) => x.status === 'done')).value).toBe('stopped')
    expect(stopped.log).toEqual(['heartbeats', 'close all'])
  })

  it('proxy — follows heartbeats, starts the service, opens only the doors asked for, then serves and says where', async () => {
    const bare = harness({})
    await waitFor(bare.actor, (s) => s.matches('serving'))
    expect(bare.log).toEqual(['heartbeats', 'heard', 'service'])
    expect(bare.emitted).toEqual([{ type: 'proxy.serving', httpUrl: null, sshUrl: null }])

    const both = harness({ gateway: true, sftp: true })
    await waitFor(both.actor, (s) => s.matches('serving'))
    expect(both.log).toEqual(['heartbeats', 'heard', 'service', 'gateway', 'sftp'])
    expect(both.emitted).toEqual([{ type: 'proxy.serving', httpUrl: 'http://127.0.0.1:8080', sshUrl: 'sftp://127.0.0.1:2222' }])
  })

  it('proxy — a door that cannot open closes what was opened and fails naming the door; stop closes and says stopped', async () => {
    const busy = harness({ gateway: true, sftp: true }, true)
    const s = await waitFor(busy.actor, (x) => x.status === 'done')
    expect(s.value).toBe('failed')
    expect(busy.log).toEqual(['heartbeats', 'heard', 'service', 'gateway', 'sftp', 'close all'])
    expect(s.context.failure).toMatchObject({ step: 'openingSftp', message: 'proxy p1: cannot open the SFTP door: listen EADDRINUSE 127.0.0.1:2222' })

    const ok = harness({ gateway: true })
    await waitFor(ok.actor, (x) => x.matches('serving'))
    ok.actor.send({ type: 'stop' })
    expect((await waitFor(ok.actor, (x) => x.status === 'done')).value).toBe('stopped')
    expect(ok.log.at(-1)).toBe('close all')
    expect(ok.emitted.at(-1)).toEqual({ type: 'proxy.stopped' })
  })
})
