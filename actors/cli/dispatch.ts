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
