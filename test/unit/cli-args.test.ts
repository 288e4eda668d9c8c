/** The command-line number parsers: decimal digits only, in range, or a usage error naming the flag. */
import { InvalidArgumentError } from 'commander';
import { describe, expect, it } from 'vitest';
import { intBetween, nonNegativeInt, positiveInt } from '../../scripts/lib/cli-args';

describe('command-line numbers', () => {
  it('take whole numbers in decimal digits', () => {
    expect(positiveInt('--rate')('42')).toBe(42);
    expect(positiveInt('--rate')(' 42 ')).toBe(42);
    expect(nonNegativeInt('--shards')('0')).toBe(0);
    expect(intBetween(100, 100_000)('--chunk')('100000')).toBe(100_000);
  });

  it('refuse what Number() would read as something else, and out-of-range values, naming the flag', () => {
    for (const v of ['', ' ', '0x2', '0b1', '1e3', '2.0', '12abc', '9007199254740993'])
      expect(() => positiveInt('--rate')(v), JSON.stringify(v)).toThrow(InvalidArgumentError);
    expect(() => positiveInt('--rate')('0')).toThrow(/--rate must be a whole number of at least 1/);
    expect(() => intBetween(100, 100_000)('--chunk')('5000000')).toThrow(
      /--chunk must be a whole number from 100 to 100000/,
    );
  });
});
