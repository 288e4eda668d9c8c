/**
 * A parameterised statement with its parameters written into its text as literals, for a simple
 * query (which takes no parameters) that carries several statements in one round trip, such as a
 * drain pass's last statement together with its COMMIT.
 *
 * Only for statements whose parameters are cast where they are used (`$3::xid8`) or go into typed
 * columns: a quoted literal has no type of its own, as a parameter sent without one has none.
 */
import pg from 'pg';

/** One parameter as an SQL literal: NULL, true/false, or a quoted string (numbers included). */
export function sqlLiteral(value: unknown): string {
  if (value === null || value === undefined) return 'NULL';
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'bigint') {
    if (typeof value === 'number' && !Number.isFinite(value))
      throw new TypeError(`cannot inline the number ${value} as an SQL literal`);
    return pg.escapeLiteral(String(value));
  }
  throw new TypeError(`cannot inline a ${typeof value} as an SQL literal`);
}

/** `sql` with each `$n` replaced by the literal of `params[n - 1]`; every `$n` must have a parameter. */
export function inlineParams(sql: string, params: readonly unknown[]): string {
  return sql.replace(/\$(\d+)/g, (_, n: string) => {
    const i = Number(n) - 1;
    if (i < 0 || i >= params.length) throw new RangeError(`$${n} has no parameter (${params.length} given)`);
    return sqlLiteral(params[i]);
  });
}
