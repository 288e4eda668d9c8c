/** Argument parsers shared by the command-line tools: a bad value is a clear usage error. */
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { validateDate } from '../../activities/export/export-day';

export const dateArg = (v: string): string => {
  try {
    return validateDate(v);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
};

export const positiveInt =
  (name: string) =>
  (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${name} must be a whole number of at least 1`);
    return n;
  };

export const nonNegativeInt =
  (name: string) =>
  (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${name} must be a whole number of at least 0`);
    return n;
  };

/**
 * Parses argv with a program built with `.exitOverride()`: 0 after --help, 2 after a usage error
 * (commander has printed it), else the code the chosen action left in `result()`.
 */
export async function runProgram(program: Command, argv: string[], result: () => number): Promise<number> {
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2; // help shown, or a usage error already printed
    throw err;
  }
  return result();
}

/** The entry point of a command-line tool: exits with main's code; an error is one line, exit 1. */
export function runMain(name: string, main: () => Promise<number>): void {
  main().then(
    (code) => process.exit(code),
    (err) => {
      console.error(`${name}: ${err.message}`);
      process.exit(1);
    },
  );
}
