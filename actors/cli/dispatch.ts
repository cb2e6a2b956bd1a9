// The dispatch table of actors/cli/status-main.ts (issue 13 item 1): which command lines run without the
// full command line. Its own module so that tests can check it without running the CLI.

/** `status DIR --offline [--json]`, in any order: what the fast path runs, else undefined. */
export function fastStatus(args: readonly string[]): { dir: string; json: boolean } | undefined {
  if (args[0] !== 'status') return undefined
  const flags = new Set<string>()
  const positional: string[] = []
  for (const a of args.slice(1)) {
    if (a === '--offline' || a === '--json') {
      if (flags.has(a)) return undefined
      flags.add(a)
    } else if (a.startsWith('-') || a === '') {
      return undefined
    } else {
      positional.push(a)
    }
  }
  // Without --offline, status asks NATS (flags, environment, or what `init` recorded): the full path.
  // With it, nothing recorded is used, so the fast path does not read .upswarm/sources.json (the
  // full path reads it first, and refuses a malformed one; the next command that needs it will).
  if (positional.length !== 1 || !flags.has('--offline')) return undefined
  return { dir: positional[0]!, json: flags.has('--json') }
}

/**
 * `update DIR [--json] [--rev N] [--on-conflict POLICY]`, in any order: what the light build
 * hands to the copy's sharing daemon (issue 15 item 4), else undefined. Any other flag (sources,
 * hooks, `--no-daemon`) goes to the full command line, which parses and reports as always.
 */
export function fastUpdate(args: readonly string[]): { dir: string; json: boolean; rev?: number; onConflict?: 'alert' | 'overwrite' | 'abort' } | undefined {
  if (args[0] !== 'update') return undefined
  const positional: string[] = []
  let json = false
  let rev: number | undefined
  let onConflict: 'alert' | 'overwrite' | 'abort' | undefined
  const rest = args.slice(1)
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!
    const [flag, inline] = a.startsWith('--') && a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined]
    if (flag === '--json' && inline === undefined && !json) {
      json = true
    } else if (flag === '--rev' && rev === undefined) {
      const v = inline ?? rest[++i]
      if (v === undefined || !/^[1-9][0-9]{0,14}$/.test(v)) return undefined
      rev = Number(v)
    } else if (flag === '--on-conflict' && onConflict === undefined) {
      const v = inline ?? rest[++i]
      if (v !== 'alert' && v !== 'overwrite' && v !== 'abort') return undefined
      onConflict = v
    } else if (a.startsWith('-') || a === '') {
      return undefined
    } else {
      positional.push(a)
    }
  }
  if (positional.length !== 1) return undefined
  return { dir: positional[0]!, json, ...(rev !== undefined ? { rev } : {}), ...(onConflict ? { onConflict } : {}) }
}
