/**
 * The connection a drain's passes run on. A pass is one transaction (drain-batch.ts); when an
 * applied pass is followed at once by the next (a budgeted activity under load), the next pass's
 * BEGIN (its lock and pass start, claim.ts) is sent with this one's COMMIT, as one simple query:
 * one round trip for the two, on a machine where every round trip waits on a busy CPU.
 *
 * The begun transaction is an ordinary next pass: it takes its lock and snapshot after the commit,
 * in statements of their own. If the query fails after the COMMIT ran, the caller cannot tell the
 * commit happened and fails the activity: the retry reads the cursor and the store's position
 * again, as after a worker that died just after a commit (docs/correctness.md).
 */
import type pg from 'pg';
import type { BeginResult } from '../../db/transaction';

export class PassConnection {
  private client: pg.PoolClient | null = null;
  /** The next pass's BEGIN results, sent with the last COMMIT, and when that query was sent. */
  private begun: { results: BeginResult; sentAt: number } | null = null;

  constructor(
    private readonly pool: pg.Pool,
    /** The BEGIN of a pass with what comes in its round trip (no parameters). */
    private readonly beginSql: string,
    /** How many statements beginSql holds (their results end a combined reply). */
    private readonly beginStatements: number,
  ) {}

  /**
   * One pass: its work in a transaction, then `end` (if any) with the COMMIT; with `chain`, the
   * next pass's BEGIN too. `t0` is when the query that began this transaction was sent (a
   * process-monotonic time: what the pass measures ages from, so never later than its BEGIN).
   * Rolled back on error, and the connection let go.
   */
  async run<T>(
    fn: (
      client: pg.PoolClient,
      begun: BeginResult,
      t0: number,
    ) => Promise<{ result: T; end: string | null; chain: boolean }>,
  ): Promise<T> {
    const begun = this.begun;
    this.begun = null;
    try {
      const client = (this.client ??= await this.pool.connect());
      const t0 = begun?.sentAt ?? performance.now();
      const results = begun?.results ?? ((await client.query(this.beginSql)) as BeginResult);
      const { result, end, chain } = await fn(client, results, t0);
      const commit = end ? `${end}; commit` : 'commit';
      if (chain) {
        const sentAt = performance.now();
        const replies = (await client.query(`${commit}; ${this.beginSql}`)) as unknown as pg.QueryResult[];
        this.begun = { results: replies.slice(-this.beginStatements), sentAt };
      } else {
        await client.query(commit);
        this.release();
      }
      return result;
    } catch (err) {
      await this.rollBack();
      throw err;
    }
  }

  /** Ends a next pass begun and not run (the caller stopped), and lets the connection go. */
  async close(): Promise<void> {
    this.begun = null;
    if (this.client) await this.rollBack();
  }

  /** Rolls back what is open and lets the connection go (destroyed if it cannot roll back). */
  private async rollBack(): Promise<void> {
    const client = this.client;
    this.client = null;
    if (!client) return;
    const broken = await client.query('rollback').then(
      () => undefined,
      (err: Error) => err,
    );
    client.release(broken);
  }

  private release(): void {
    this.client?.release();
    this.client = null;
  }
}
