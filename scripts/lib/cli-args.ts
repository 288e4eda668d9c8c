/** Argument parsers shared by the command-line tools: a bad value is a clear usage error. */
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { validateDate } from '../../activities/export/day-inputs';

export const dateArg = (v: string): string => {
  try {
    return validateDate(v);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
};

/** A parser of whole numbers of at least `min`, named `name` in its error. */
const wholeNumber =
  (min: number) =>
  (name: string) =>
  (v: string): number => {
    // decimal digits only: Number() reads ' ' as 0, '0x10' as 16 and '1e3' as 1000
    const n = /^\s*-?\d+\s*$/.test(v) ? Number(v) : NaN;
    if (!Number.isSafeInteger(n) || n < min)
      throw new InvalidArgumentError(`${name} must be a whole number of at least ${min}`);
    return n;
  };

export const positiveInt = wholeNumber(1);

/** A parser of whole numbers from `min` to `max`, named `name` in its error. */
export const intBetween =
  (min: number, max: number) =>
  (name: string) =>
  (v: string): number => {
    const n = wholeNumber(min)(name)(v);
    if (n > max) throw new InvalidArgumentError(`${name} must be a whole number from ${min} to ${max}`);
    return n;
  };
export const nonNegativeInt = wholeNumber(0);

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
