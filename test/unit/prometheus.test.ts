// Issue 16 item 5: the hand-written exposition format against the tests' strict parser.
import { describe, expect, it } from 'vitest'
import { Metrics } from '../../infra/metrics/prometheus.ts'
import { parsePrometheus } from '../helpers/prometheus.ts'

describe('prometheus text', () => {
  it('metrics — counters and gauges render with HELP and TYPE, labels escaped, and parse back to the same values', async () => {
    const m = new Metrics()
    const c = m.counter('t_requests_total', 'requests\nby op \\ kind', [{ op: 'a' }])
    c.inc({ op: 'a' }, 2)
    c.inc({ op: 'say "hi"\\\n' })
    m.gauge('t_peers', 'peers', () => 3.5)
    m.collect('t_lag', 'gauge', 'lag', async () => [{ labels: { product: 'p' }, value: 0 }])
    const families = parsePrometheus(await m.render())
    expect([...families.values()]).toEqual([
      { name: 't_requests_total', help: 'requests\\nby op \\\\ kind', type: 'counter', samples: [{ labels: { op: 'a' }, value: 2 }, { labels: { op: 'say "hi"\\\n' }, value: 1 }] },
      { name: 't_peers', help: 'peers', type: 'gauge', samples: [{ labels: {}, value: 3.5 }] },
      { name: 't_lag', help: 'lag', type: 'gauge', samples: [{ labels: { product: 'p' }, value: 0 }] },
    ])
  })

  it('metrics — bad names, a counter without _total, a family twice and a counter going down are refused with what is wrong', () => {
    const m = new Metrics()
    expect(() => m.gauge('1bad', 'x', () => 0)).toThrow(/not a Prometheus name/)
    expect(() => m.counter('t_requests', 'x')).toThrow(/must end in _total/)
    m.gauge('t_g', 'x', () => 0)
    expect(() => m.gauge('t_g', 'x', () => 0)).toThrow(/registered twice/)
    expect(() => m.counter('t_c_total', 'x').inc({}, -1)).toThrow(/cannot go down/)
  })

  it('metrics — the strict parser refuses a sample without HELP and TYPE, a stray line, a bad value or label, and a missing final newline', () => {
    expect(() => parsePrometheus('x 1\n')).toThrow(/outside its family/)
    expect(() => parsePrometheus('# TYPE x gauge\nx 1\n')).toThrow(/without its HELP/)
    expect(() => parsePrometheus('# HELP x h\n# TYPE x gauge\n\nx 1\n')).toThrow(/not a HELP, TYPE or sample/)
    expect(() => parsePrometheus('# HELP x h\n# TYPE x gauge\nx one\n')).toThrow(/not a number/)
    expect(() => parsePrometheus('# HELP x h\n# TYPE x gauge\nx{a=1} 1\n')).toThrow(/malformed labels/)
    expect(() => parsePrometheus('# HELP x h\n# TYPE x counter\nx -1\n')).toThrow(/counter x is -1/)
    expect(() => parsePrometheus('# HELP x h\n# TYPE x gauge\nx 1')).toThrow(/newline/)
  })
})
