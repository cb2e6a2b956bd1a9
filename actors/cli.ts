// The `upswarm` command line: parses arguments and starts actors. No logic of its own.
import { Command, CommanderError } from 'commander'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { PROJECT_ROOT } from '../infra/project-root.ts'
import { registerRepositoryCommands } from './cli/repository.ts'
import { registerClusterCommands } from './cli/cluster.ts'
import { registerClientCommands } from './cli/client.ts'
import { registerCredsCommands } from './cli/creds.ts'
import { registerRootCommands } from './cli/root.ts'
import { registerNotaryCommand } from './cli/notary.ts'
import { registerInspectCommand } from './cli/inspect.ts'
import { registerFleetCommand } from './cli/fleet.ts'
import { registerConsoleCommand } from './cli/console.ts'
import { registerSiteCommands } from './cli/sites.ts'
import { reportError } from './cli/output.ts'

const { version } = JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version: string }

const program = new Command()
program
  .name('upswarm')
  .description('Keeps installed copies of a program up to date: signed releases, replicated servers, peer-to-peer delivery, rollback to any version.')
  .version(version, '-V, --version', 'print the version (from package.json)')
  .showHelpAfterError()
  .configureHelp({ sortSubcommands: false })
  // Usage errors (unknown option, missing argument) exit 2 like our own (issue 11 item 9);
  // commander has printed them. Set before the commands are added: they inherit it.
  .exitOverride()

registerClusterCommands(program)
registerRepositoryCommands(program)
registerClientCommands(program)
registerCredsCommands(program)
registerRootCommands(program)
registerNotaryCommand(program)
registerInspectCommand(program)
registerFleetCommand(program)
registerConsoleCommand(program)
registerSiteCommands(program)

/** Parses the command line and runs its command (main.ts calls it: no top-level await, so the build may be CommonJS). */
export async function runCli(): Promise<void> {
  try {
    await program.parseAsync(process.argv)
  } catch (err) {
    process.exitCode = err instanceof CommanderError ? (err.exitCode === 0 ? 0 : 2) : reportError(err, process.argv.includes('--json'))
  }
}
