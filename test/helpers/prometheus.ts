// A strict parser of the Prometheus text exposition format (0.0.4) for the metrics tests: every
// family has `# HELP` then `# TYPE` before its samples, each once; every sample is
// `name{label="value",…} value` of the family just declared; nothing else (a stray comment, a
// blank line, a sample of an undeclared family, a malformed label or value) is accepted.
export interface PromSample { labels: Record<string, string>; value: number }
export interface PromFamily { name: string; help: string; type: string; samples: PromSample[] }

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*'
const HELP_RE = new RegExp(`^# HELP (${NAME}) (.*)$`)
const TYPE_RE = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`)
const SAMPLE_RE = new RegExp(`^(${NAME})(\\{.*\\})? (\\S+)$`)
const LABEL_RE = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/y
const VALUE_RE = /^(?:[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|NaN|[+-]Inf)$/

function parseLabels(text: string, where: string): Record<string, string> {
  const body = text.slice(1, -1)
  const out: Record<string, string> = {}
  LABEL_RE.lastIndex = 0
  while (LABEL_RE.lastIndex < body.length) {
    const m = LABEL_RE.exec(body)
    if (!m) throw new Error(`${where}: malformed labels ${text}`)
    if (m[1]! in out) throw new Error(`${where}: label ${m[1]} twice`)
    out[m[1]!] = m[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c))
    if (m[3] === '' && LABEL_RE.lastIndex < body.length) throw new Error(`${where}: malformed labels ${text}`)
  }
  return out
}

export function parsePrometheus(text: string, source = 'metrics'): Map<string, PromFamily> {
  if (!text.endsWith('\n')) throw new Error(`${source}: does not end with a newline`)
  const families = new Map<string, PromFamily>()
  let current: PromFamily | undefined
  let pendingHelp: { name: string; help: string } | undefined
  text.slice(0, -1).split('\n').forEach((line, i) => {
    const where = `${source} line ${i + 1}`
    const help = HELP_RE.exec(line)
    const type = TYPE_RE.exec(line)
    if (help) {
      if (families.has(help[1]!) || pendingHelp) throw new Error(`${where}: HELP for ${help[1]} out of place`)
      pendingHelp = { name: help[1]!, help: help[2]! }
      current = undefined
      return
    }
    if (type) {
      if (!pendingHelp || pendingHelp.name !== type[1]) throw new Error(`${where}: TYPE for ${type[1]} without its HELP just before`)
      current = { ...pendingHelp, type: type[2]!, samples: [] }
      families.set(current.name, current)
      pendingHelp = undefined
      return
    }
    const sample = SAMPLE_RE.exec(line)
    if (!sample) throw new Error(`${where}: not a HELP, TYPE or sample line: ${JSON.stringify(line)}`)
    if (!current || sample[1] !== current.name) throw new Error(`${where}: sample of ${sample[1]} outside its family`)
    if (!VALUE_RE.test(sample[3]!)) throw new Error(`${where}: value ${sample[3]} is not a number`)
    const value = sample[3] === '+Inf' ? Infinity : sample[3] === '-Inf' ? -Infinity : Number(sample[3])
    if (current.type === 'counter' && !(value >= 0)) throw new Error(`${where}: counter ${current.name} is ${sample[3]}`)
    current.samples.push({ labels: sample[2] ? parseLabels(sample[2], where) : {}, value })
  })
  if (pendingHelp) throw new Error(`${source}: HELP for ${pendingHelp.name} without a TYPE`)
  return families
}

/** The sum of a family's samples whose labels include `match`. */
export function total(families: Map<string, PromFamily>, name: string, match: Record<string, string> = {}): number {
  const f = families.get(name)
  if (!f) throw new Error(`no metric ${name} (have ${[...families.keys()].join(', ')})`)
  return f.samples.filter((s) => Object.entries(match).every(([k, v]) => s.labels[k] === v)).reduce((n, s) => n + s.value, 0)
}
