/** Argument parsers shared by the command-line tools: a bad value is a clear usage error. */
import { InvalidArgumentError } from 'commander';
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
