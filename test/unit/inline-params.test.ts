import { describe, expect, it } from 'vitest';
import { inlineParams, sqlLiteral } from '../../db/inline-params';

describe('inlineParams', () => {
  it('writes each parameter as a literal, $10 and above not mistaken for $1', () => {
    const params = ['a', 2, null, true, false, 6n, '7', '8', '9', 'ten', 'eleven'];
    expect(inlineParams('select $1, $2::int, $3, $4, $5, $6, $10, $11, $1', params)).toBe(
      `select 'a', '2'::int, NULL, true, false, '6', 'ten', 'eleven', 'a'`,
    );
  });

  it('quotes what could end the literal: quotes and backslashes', () => {
    expect(sqlLiteral(`it's`)).toBe(`'it''s'`);
    expect(sqlLiteral('a\\b')).toBe(` E'a\\\\b'`);
  });

  it('refuses what it cannot write safely, and a placeholder without a parameter', () => {
    expect(() => sqlLiteral({})).toThrow(/cannot inline a object/);
    expect(() => sqlLiteral(Number.NaN)).toThrow(/cannot inline the number NaN/);
    expect(() => inlineParams('select $2', ['only one'])).toThrow(/\$2 has no parameter \(1 given\)/);
  });
});
