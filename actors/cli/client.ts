// Commands of the installed client: init, status, update, rollback, history, ignore, watch, daemon.
import type { Command } from 'commander'

export function registerClientCommands(program: Command): void {
  void program
}
