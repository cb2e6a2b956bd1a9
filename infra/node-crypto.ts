// node:crypto, loaded on first use (issue 13 item 1). Loading it builds a dozen of node's internal
// modules (ciphers, key objects, streams' transforms): about 13 ms of the 200 of a `status
// --offline` on this machine, which hashes nothing when no file changed. The modules `status`
// loads take their crypto from here; by `require`, since the build's import() would start the ES
// module loader (docs/decisions.md, "A CommonJS entry, an ASCII bundle, fewer builtins").
import type * as Crypto from 'node:crypto'
import { builtin } from './lazy-builtin.ts'

let loaded: typeof Crypto | undefined

export function nodeCrypto(): typeof Crypto {
  return (loaded ??= builtin('node:crypto'))
}
