// Issue 17 item 1: `up`'s per-host addresses are checked before anything starts; a bad one is an
// error naming the flag and the value.
import { describe, expect, it } from 'vitest'
import { domainArg, hostArg, hostPort, leafUrls, routeList } from '../../actors/launcher/hosts.ts'

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
})
