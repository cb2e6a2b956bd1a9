// Node's built-in modules a command or a long-lived process needs only on some paths, loaded on
// first use: each one loaded costs start-up time (issue 13 item 1: node:crypto builds a dozen of
// node's internal modules, child_process brings net and dgram) and puts its share of node's own
// code and sources in memory (issue 13 item 5: node:http and node:https 3.6 MiB of resident
// memory, node:zlib, node:worker_threads and node:dgram about 1.5 MiB each, measured alone).
// By `require` (synchronous, and the build's import() would start the ES module loader).
import { createRequire } from 'node:module'

const req = createRequire(import.meta.url)

type Builtins = {
  'node:crypto': typeof import('node:crypto')
  'node:child_process': typeof import('node:child_process')
  'node:net': typeof import('node:net')
  'node:http': typeof import('node:http')
  'node:https': typeof import('node:https')
  'node:dgram': typeof import('node:dgram')
  'node:zlib': typeof import('node:zlib')
  'node:worker_threads': typeof import('node:worker_threads')
}

export function builtin<K extends keyof Builtins>(name: K): Builtins[K] {
  return req(name) as Builtins[K]
}
