/**
 * The operator CLI: `npm run ops -- <command>`. Every command that starts work starts a Temporal
 * workflow with a meaningful id, so it is visible and controllable in the Web UI and could as well
 * be started from there or with the `temporal` CLI. Exit codes: 0 done, 1 failed (or verify found
 * mismatches), 2 bad usage.
 */
import { Command, CommanderError } from 'commander';
import { ConfigurationError } from '../config';
import { createOpsContext, OpsContext, OpsError } from './ops/context';
import { deadLetterCommands } from './ops/dead-letter-commands';
import { drainCommands } from './ops/drain-commands';
import { registerReplay } from './ops/replay-command';
import { storeCommands } from './ops/store-commands';

export function buildProgram(ctx: () => OpsContext): Command {
  const program = new Command()
    .name('npm run ops --')
    .description('operate the fresh-badges pipeline')
    .showHelpAfterError()
    .exitOverride();
  drainCommands(program, ctx);
  registerReplay(program, ctx);
  storeCommands(program, ctx);
  deadLetterCommands(program, ctx);
  return program;
}

async function main(argv: string[]): Promise<number> {
  let context: OpsContext | undefined;
  const ctx = () => (context ??= createOpsContext());
  try {
    await buildProgram(ctx).parseAsync(argv, { from: 'user' });
    return Number(process.exitCode ?? 0);
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2; // usage (commander printed it)
    if (err instanceof ConfigurationError) {
      console.error(`ops: ${err.message}`);
      return 2;
    }
    console.error(`ops: ${(err as Error).message}`);
    return err instanceof OpsError ? err.exitCode : 1;
  } finally {
    await context?.close();
  }
}

if (require.main === module) void main(process.argv.slice(2)).then((code) => process.exit(code));
