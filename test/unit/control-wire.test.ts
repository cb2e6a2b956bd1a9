// Issue 15 item 4: what `update` and the sharing daemon say on the copy's control socket, and
// which `update` command lines the light build hands to the daemon.
import { describe, expect, it } from 'vitest'
import { fastUpdate } from '../../actors/cli/dispatch.ts'
import { parseControlQuestion } from '../../infra/store/working-copy/control-wire.ts'

describe('control socket', () => {
  it('control-wire — the daemon takes an update with an optional revision and conflict policy, and says what is wrong with anything else', () => {
    expect(parseControlQuestion('{"update":{}}')).toEqual({ update: { onConflict: 'alert' } })
    expect(parseControlQuestion('{"update":{"rev":7,"onConflict":"abort"}}')).toEqual({ update: { rev: 7, onConflict: 'abort' } })
    expect(parseControlQuestion('{"update":')).toBe('not JSON')
    expect(parseControlQuestion('{"rollback":{"rev":1}}')).toBe('no "update" object')
    expect(parseControlQuestion('{"update":null}')).toBe('no "update" object')
    for (const rev of [0, -1, 1.5, '3', 2 ** 60]) expect(parseControlQuestion(JSON.stringify({ update: { rev } }))).toBe('"rev" is not a revision number (1 or more)')
    expect(parseControlQuestion('{"update":{"onConflict":"rm -rf"}}')).toBe('"onConflict" is not one of alert, overwrite, abort')
  })

  it('dispatch — `update DIR` with --json, --rev and --on-conflict only goes to the daemon from the light build; any other flag to the full command line', () => {
    expect(fastUpdate(['update', 'w'])).toEqual({ dir: 'w', json: false })
    expect(fastUpdate(['update', '--json', 'w', '--rev', '3', '--on-conflict', 'overwrite'])).toEqual({ dir: 'w', json: true, rev: 3, onConflict: 'overwrite' })
    expect(fastUpdate(['update', 'w', '--rev=4', '--on-conflict=abort'])).toEqual({ dir: 'w', json: false, rev: 4, onConflict: 'abort' })
    // Whatever the full command line parses or refuses itself.
    for (const args of [
      ['update'], ['update', 'a', 'b'], ['update', 'w', '--rev', '0'], ['update', 'w', '--rev'], ['update', 'w', '--rev', 'x'],
      ['update', 'w', '--on-conflict', 'keep'], ['update', 'w', '--json', '--json'], ['update', 'w', '--no-daemon'],
      ['update', 'w', '--nats', 'tls://127.0.0.1:4222'], ['update', 'w', '--pre-install', 'true'], ['update', 'w', '--help'], ['status', 'w'],
    ]) expect(fastUpdate(args), args.join(' ')).toBeUndefined()
  })
})
