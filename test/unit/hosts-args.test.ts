// Issue 17 item 1: `up`'s per-host addresses are checked before anything starts; a bad one is an
// error naming the flag and the value.
import { describe, expect, it } from 'vitest'
import { checkAdvertise, domainArg, hostArg, hostPort, leafUrls, routeList } from '../../actors/launcher/hosts.ts'

describe('up per-host flags', () => {
  it('hosts — --listen/--advertise take an IP address or a host name and refuse anything else, naming the flag', () => {
    expect(hostArg('--listen', '10.231.1.1')).toBe('10.231.1.1')
    expect(hostArg('--advertise', 'nats1.example.net')).toBe('nats1.example.net')
    expect(hostArg('--listen', '::')).toBe('::')
    expect(() => hostArg('--advertise', 'bad host!')).toThrow(/--advertise "bad host!": expected an IP address or a host name/)
    expect(() => hostArg('--listen', '')).toThrow(/--listen ""/)
  })

  it('hosts — --routes takes nats-route:// URLs with a host and a port, and names the entry it refuses', () => {
    expect(routeList('nats-route://10.231.1.2:6222, nats-route://10.231.1.3:6222')).toEqual(['nats-route://10.231.1.2:6222', 'nats-route://10.231.1.3:6222'])
    expect(() => routeList('nats-route://10.231.1.2:6222,http://x:1')).toThrow(/--routes: "http:\/\/x:1": expected nats-route:\/\/ADDR:PORT/)
    expect(() => routeList('nats-route://10.231.1.2')).toThrow(/"nats-route:\/\/10.231.1.2"/)
    expect(() => routeList('10.231.1.2:6222')).toThrow(/--routes/)
  })

  it('sites — --leaf-listen, --leaf-remote and the JetStream domains are checked, naming the flag', () => {
    expect(hostPort('--leaf-listen', '10.231.11.1:7422')).toEqual({ host: '10.231.11.1', port: 7422 })
    expect(() => hostPort('--leaf-listen', '10.231.11.1')).toThrow(/--leaf-listen "10.231.11.1": expected ADDR:PORT/)
    expect(() => hostPort('--leaf-listen', '10.231.11.1:99999')).toThrow(/--leaf-listen/)
    expect(leafUrls('tls://10.231.11.1:7422,tls://10.231.12.1:7422')).toHaveLength(2)
    expect(() => leafUrls('nats://10.231.11.1:4222')).toThrow(/--leaf-remote: "nats:\/\/10.231.11.1:4222": expected tls:\/\/ADDR:PORT/)
    expect(domainArg('--js-domain', 'site-a')).toBe('site-a')
    expect(() => domainArg('--core-domain', 'core.x')).toThrow(/--core-domain "core.x": a JetStream domain is letters, digits/)
  })

  it('hosts — --advertise: an address of this host passes; one no interface carries is a warning (NAT, or a typo); a name that does not resolve is an error', async () => {
    const local = (): string[] => ['127.0.0.1', '10.231.1.1', '::1']
    expect(await checkAdvertise('10.231.1.1', local)).toBeUndefined()
    expect(await checkAdvertise('10.231.1.9', local)).toMatch(/--advertise 10\.231\.1\.9 is not an address of this host \(127\.0\.0\.1, 10\.231\.1\.1, ::1\): .*NAT or a load balancer.*typo/)
    expect(await checkAdvertise('nats1.example.net', local, async () => ['10.231.1.1'])).toBeUndefined()
    expect(await checkAdvertise('nats2.example.net', local, async () => ['192.0.2.7'])).toMatch(/nats2\.example\.net \(192\.0\.2\.7\) is not an address of this host/)
    await expect(checkAdvertise('nowhere.invalid', local, async () => { throw new Error('getaddrinfo ENOTFOUND nowhere.invalid') }))
      .rejects.toMatchObject({ code: 'UPSWARM_E_CONFIG', message: expect.stringMatching(/--advertise nowhere\.invalid: the name does not resolve here \(getaddrinfo ENOTFOUND/) })
    // The real interfaces of this machine carry 127.0.0.1.
    expect(await checkAdvertise('127.0.0.1')).toBeUndefined()
  })
})
