// Node's built-in modules a long-lived process needs only on some paths, loaded on first use
// (issue 13 item 5): each one loaded puts its share of node's own code and sources in memory
// (node:http and node:https 3.6 MiB of resident memory, node:zlib, node:worker_threads and
// node:dgram about 1.5 MiB each, measured alone), which an idle sharing daemon does not use.
// By `require` (synchronous, and the build's import() would start the ES module loader).
import { createRequire } from 'node:module'

const req = createRequire(import.meta.url)

type Builtins = {
  'node:http': typeof import('node:http')
  'node:https': typeof import('node:https')
  'node:dgram': typeof import('node:dgram')
  'node:zlib': typeof import('node:zlib')
  'node:worker_threads': typeof import('node:worker_threads')
}

export function builtin<K extends keyof Builtins>(name: K): Builtins[K] {
  return req(name) as Builtins[K]
}
