/**
 * The test's own SQL in the logical run (test/support/logical-run.ts), where the shop tables live in
 * two source databases beside the pipeline's: a pg.Pool that sends each statement to the database
 * holding the tables it names, so the correctness files write and read "the shop" exactly as they do
 * in one database.
 *  - A statement naming shop.skus, shop.fulfillment_centers, shop.region_fc or shop.inventory goes
 *    to the inventory database, one naming shop.orders to the orders database, anything else to the
 *    pipeline's. A TRUNCATE of tables of both is split; any other statement that names tables of two
 *    databases is refused (the services could not run it either).
 *  - A transaction on a client (BEGIN … COMMIT) begins on each database when its first statement
 *    reaches it and commits on each in the order they began: two source databases, two source
 *    transactions, as two services would have. SET LOCAL and friends reach every database of the
 *    transaction, those that join later included.
 *  - A statement that names no table goes to the pipeline's database, or, in a `session(home)`,
 *    to that source (where a service's session would take its transaction id).
 * Only the test's side goes through it: the pipeline's code connects to each database itself.
 */
import pg from 'pg';

type Target = 'pipeline' | 'inventory' | 'orders';

const INVENTORY_TABLE = /\bshop\.(skus|fulfillment_centers|region_fc|inventory)\b/i;
const ORDERS_TABLE = /\bshop\.orders\b/i;
const PIPELINE_OBJECT = /\bpipeline\./i;
/** Statements that belong to the transaction as a whole rather than to one database. */
const TRANSACTION_WIDE = /^\s*(set\s+(local|transaction)\b|savepoint\b|release\b|rollback\s+to\b)/i;
const BEGIN = /^\s*(begin|start\s+transaction)\b/i;
const END = /^\s*(commit|end|rollback|abort)\b\s*;?\s*$/i;

type QueryArg = string | pg.QueryConfig;

function textOf(q: QueryArg): string {
  return typeof q === 'string' ? q : q.text;
}

/** Where a statement goes; TRUNCATE of both kinds: split into one per database. */
export function routeStatement(sql: string, home: Target = 'pipeline'): { target: Target; sql: string }[] {
  const inventory = INVENTORY_TABLE.test(sql);
  const orders = ORDERS_TABLE.test(sql);
  if (!inventory && !orders) return [{ target: PIPELINE_OBJECT.test(sql) ? 'pipeline' : home, sql }];
  if (PIPELINE_OBJECT.test(sql))
    throw new Error(`routed test pool: a statement names both shop and pipeline objects: ${sql.slice(0, 200)}`);
  if (inventory && orders) {
    const truncate = /^\s*truncate\s+(table\s+)?(.*?)(\s+(restart|continue)\s+identity.*|\s+cascade.*)?;?\s*$/is.exec(
      sql,
    );
    if (!truncate)
      throw new Error(`routed test pool: a statement names tables of both source databases: ${sql.slice(0, 200)}`);
    const tables = truncate[2]!.split(',').map((t) => t.trim());
    const tail = truncate[3] ?? '';
    const of = (re: RegExp) => tables.filter((t) => re.test(t)).join(', ');
    return [
      { target: 'inventory', sql: `truncate ${of(INVENTORY_TABLE)}${tail}` },
      { target: 'orders', sql: `truncate ${of(ORDERS_TABLE)}${tail}` },
    ];
  }
  return [{ target: inventory ? 'inventory' : 'orders', sql }];
}

function withText(q: QueryArg, sql: string): QueryArg {
  return typeof q === 'string' ? sql : { ...q, text: sql };
}

export class RoutedPool extends pg.Pool {
  readonly pipeline: pg.Pool;
  readonly inventory: pg.Pool;
  readonly orders: pg.Pool;

  /** (A pg.Pool, so code that checks `instanceof pg.Pool` takes it; its own connections are never used.) */
  constructor(urls: { pipeline: string; inventory: string; orders: string }, max = 20) {
    super({ connectionString: urls.pipeline, max: 1 });
    this.pipeline = new pg.Pool({ connectionString: urls.pipeline, max });
    this.inventory = new pg.Pool({ connectionString: urls.inventory, max });
    this.orders = new pg.Pool({ connectionString: urls.orders, max });
    for (const p of [this.pipeline, this.inventory, this.orders]) p.on('error', () => {});
  }

  poolOf(target: Target): pg.Pool {
    return target === 'inventory' ? this.inventory : target === 'orders' ? this.orders : this.pipeline;
  }

  // @ts-expect-error: the promise forms only (what the tests use)
  override async query(q: QueryArg, values?: unknown[]): Promise<pg.QueryResult> {
    const routes = routeStatement(textOf(q));
    let last: pg.QueryResult | undefined;
    for (const r of routes) last = await this.poolOf(r.target).query(withText(q, r.sql) as never, values as never);
    return last!;
  }

  override async connect(): Promise<pg.PoolClient> {
    return new RoutedClient(this, 'pipeline') as unknown as pg.PoolClient;
  }

  /**
   * A session as a service would hold one: statements that name no table (`select
   * pg_current_xact_id()`, `set lock_timeout …`) go to `home`; end() gives its connections back.
   */
  session(home: 'inventory' | 'orders'): pg.Client {
    return new RoutedClient(this, home) as unknown as pg.Client;
  }

  override async end(): Promise<void> {
    await Promise.all([this.pipeline.end(), this.inventory.end(), this.orders.end()]);
    await super.end();
  }
}

/** A client of the routed pool: one real client per database it reaches, one transaction on each. */
class RoutedClient {
  private readonly clients = new Map<Target, pg.PoolClient>();
  /** BEGIN and transaction-wide statements, replayed on a database the transaction reaches later. */
  private prelude: string[] | null = null;

  constructor(
    private readonly pool: RoutedPool,
    /** Where a statement naming no table goes. */
    private readonly home: Target,
  ) {}

  private async clientOf(target: Target): Promise<pg.PoolClient> {
    let c = this.clients.get(target);
    if (!c) {
      c = await this.pool.poolOf(target).connect();
      this.clients.set(target, c);
      for (const s of this.prelude ?? []) await c.query(s);
    }
    return c;
  }

  async query(q: QueryArg, values?: unknown[]): Promise<pg.QueryResult> {
    const sql = textOf(q);
    if (BEGIN.test(sql) && this.prelude === null) {
      this.prelude = [sql];
      for (const c of this.clients.values()) await c.query(sql);
      return { rows: [], rowCount: null, command: 'BEGIN', oid: 0, fields: [] };
    }
    if (this.prelude !== null && TRANSACTION_WIDE.test(sql)) {
      this.prelude.push(sql);
      let last: pg.QueryResult | undefined;
      for (const c of this.clients.values()) last = await c.query(sql);
      return last ?? { rows: [], rowCount: null, command: 'SET', oid: 0, fields: [] };
    }
    if (this.prelude !== null && END.test(sql)) {
      this.prelude = null;
      let last: pg.QueryResult | undefined;
      // in the order the databases joined the transaction
      for (const c of this.clients.values()) last = await c.query(sql);
      return (
        last ?? { rows: [], rowCount: null, command: sql.trim().split(/\s/)[0]!.toUpperCase(), oid: 0, fields: [] }
      );
    }
    let last: pg.QueryResult | undefined;
    for (const r of routeStatement(sql, this.home))
      last = await (await this.clientOf(r.target)).query(withText(q, r.sql) as never, values as never);
    return last!;
  }

  release(err?: Error | boolean): void {
    for (const c of this.clients.values()) c.release(err);
    this.clients.clear();
  }

  async end(): Promise<void> {
    this.release(true);
  }

  on(): this {
    return this;
  }
}
