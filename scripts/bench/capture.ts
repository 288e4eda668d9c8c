/**
 * `npm run bench:capture`: what capture from the WAL costs the source and how fast it fills the
 * outbox, measured in one run on this machine (docs/benchmarks.md).
 *
 *  1. WAL per order transaction (2 inventory updates + 2 order inserts, the order service's
 *     transaction): the server's WAL position before and after each transaction, on a server
 *     where nothing else writes (no capture runs meanwhile; run it on a quiet machine): a database
 *     set up for logical capture (publication, orders REPLICA IDENTITY FULL, a slot), one with no
 *     capture at all, and one with the trigger capture. The three take turns, transaction by
 *     transaction, so checkpoints' full-page images fall on all alike. A tick's WAL (capture
 *     writes one every CAPTURE_TICK_MS) is measured the same way and printed per second.
 *  2. A backlog of --changes source changes written while no capture runs, then captured into
 *     the outbox of a pipeline database of its own: changes/s from the start of capture until a
 *     tick written after the backlog is in the outbox.
 */
import { Command } from 'commander';
import pg from 'pg';
import { runCapture } from '../../capture/capture-loop';
import { ensureSlot } from '../../capture/slot';
import { emitTick } from '../../capture/ticks';
import { captureSources } from '../../capture/sources';
import { ensureDatabase, migrate } from '../../db/migrate';
import { createPool } from '../../db/pool';
import { positiveInt } from '../lib/cli-args';
import { createSourceDatabase, withClient, withDatabase } from '../lib/source-databases';

const BASE = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/fresh_badges_bench';
const LOGICAL = withDatabase(BASE, 'fresh_badges_bench_source');
const PLAIN = withDatabase(BASE, 'fresh_badges_bench_plain');
const TRIGGER = withDatabase(BASE, 'fresh_badges_bench_trigger');
const PIPELINE = withDatabase(BASE, 'fresh_badges_bench_capture');

interface Options {
  orders: number;
  changes: number;
  txRows: number;
  skus: number;
}

function parseOptions(): Options {
  const o = new Command()
    .option('--orders <n>', 'order transactions measured for WAL, per variant', positiveInt('--orders'), 2_000)
    .option('--changes <n>', 'source changes in the capture backlog', positiveInt('--changes'), 1_000_000)
    .option('--tx-rows <n>', 'changes per source transaction in the backlog', positiveInt('--tx-rows'), 100)
    .option('--skus <n>', 'SKUs in the source catalogue (2 FCs each)', positiveInt('--skus'), 50_000)
    .parse()
    .opts<Options>();
  return o;
}

async function seed(url: string, skus: number): Promise<void> {
  await withClient(url, async (c) => {
    await c.query(
      `insert into shop.fulfillment_centers values ('FC-1', 'R1', 1000000, now()), ('FC-2', 'R1', 1000000, now())`,
    );
    await c.query(
      `insert into shop.skus select 'S' || i, 'title ' || i, 'active', now() from generate_series(1, $1) i`,
      [skus],
    );
    await c.query(
      `insert into shop.inventory select 'S' || i, fc, 1000, 0, now() from generate_series(1, $1) i, (values ('FC-1'), ('FC-2')) f(fc)`,
      [skus],
    );
    await c.query('vacuum analyze');
  });
}

/** The trigger capture's database: the pipeline schema with its triggers (all migrations). */
async function createTriggerDatabase(skus: number): Promise<void> {
  await createSourceDatabase({ url: TRIGGER, tables: 'all', forCapture: false });
  await withClient(TRIGGER, (c) => migrate(c).then(() => undefined));
  await seed(TRIGGER, skus);
}

const walLsn = async (c: pg.Client): Promise<bigint> =>
  BigInt((await c.query(`select pg_current_wal_insert_lsn() - '0/0'::pg_lsn as b`)).rows[0].b);

/** One order transaction; returns the WAL the server wrote meanwhile (commit record included). */
async function orderTransaction(c: pg.Client, sku: number, orderId: number): Promise<number> {
  const before = await walLsn(c);
  await c.query('begin');
  for (const fc of ['FC-1', 'FC-2'])
    await c.query(`update shop.inventory set reserved = reserved + 1 where sku_id = $1 and fc_id = $2`, [
      `S${sku}`,
      fc,
    ]);
  await c.query(
    `insert into shop.orders (order_id, sku_id, fc_id, qty, status) values ($1, $2, 'FC-1', 1, 'placed'), ($1 + 1, $2, 'FC-2', 1, 'placed')`,
    [orderId, `S${sku}`],
  );
  await c.query('commit');
  return Number((await walLsn(c)) - before);
}

/** The WAL of one tick (capture/ticks.ts), averaged over `n`. */
async function tickWal(c: pg.Client, n = 200): Promise<number> {
  const before = await walLsn(c);
  for (let i = 0; i < n; i++) await emitTick(c, c, 'bench');
  return Number((await walLsn(c)) - before) / n;
}

async function measureWal(o: Options): Promise<Record<string, number>> {
  await createSourceDatabase({ url: PLAIN, tables: 'all', forCapture: false });
  await seed(PLAIN, o.skus);
  await createTriggerDatabase(o.skus);
  const variants = { logical: LOGICAL, none: PLAIN, trigger: TRIGGER };
  const clients = Object.fromEntries(
    await Promise.all(
      Object.entries(variants).map(async ([k, url]) => {
        const c = new pg.Client({ connectionString: url });
        await c.connect();
        return [k, c] as const;
      }),
    ),
  );
  const totals: Record<string, number> = { logical: 0, none: 0, trigger: 0 };
  try {
    for (let i = 0; i < o.orders; i++)
      for (const k of Object.keys(variants))
        totals[k]! += await orderTransaction(clients[k]!, 1 + (i % o.skus), 1_000_000 + 2 * i);
  } finally {
    await Promise.all(Object.values(clients).map((c) => c.end()));
  }
  return Object.fromEntries(Object.entries(totals).map(([k, v]) => [k, v / o.orders]));
}

/** Writes the backlog into the source: `changes` inventory updates in transactions of `txRows`. */
async function writeBacklog(o: Options): Promise<number> {
  const started = Date.now();
  await withClient(LOGICAL, (c) =>
    c.query(`do $$
      declare n int := 0;
      begin
        while n < ${o.changes} loop
          update shop.inventory set on_hand = on_hand + 1
           where sku_id in (select 'S' || (1 + (n / 2 + g) % ${o.skus}) from generate_series(0, ${o.txRows / 2 - 1}) g);
          n := n + ${o.txRows};
          commit;
        end loop;
      end $$`),
  );
  return (Date.now() - started) / 1000;
}

async function measureCapture(o: Options): Promise<{ seconds: number; rows: number; writeSeconds: number }> {
  await ensureDatabase(PIPELINE);
  await withClient(PIPELINE, async (c) => {
    await migrate(c);
    await c.query(`truncate pipeline.outbox; delete from pipeline.capture_progress`);
  });
  const [source] = captureSources({
    DATABASE_URL: PIPELINE,
    INVENTORY_DATABASE_URL: LOGICAL,
    ORDERS_DATABASE_URL: LOGICAL,
  });
  await withClient(LOGICAL, (c) => ensureSlot(c, source!.slot));
  const writeSeconds = await writeBacklog(o);
  const pipeline = createPool(PIPELINE);
  const since = Date.now();
  const abort = new AbortController();
  let last = 0;
  try {
    const p = await runCapture({
      source: source!,
      pipeline,
      tickMs: 100,
      maxBatchRows: 20_000,
      signal: abort.signal,
      onProgress: (p) => {
        if (Date.now() - last > 2_000) {
          last = Date.now();
          console.log(`  captured ${p.rows.toLocaleString()} rows`);
        }
        if (p.coveredAtMs !== null && p.coveredAtMs > since) abort.abort();
      },
    });
    return { seconds: (Date.now() - since) / 1000, rows: p.rows, writeSeconds };
  } finally {
    await pipeline.end();
    await withClient(LOGICAL, (c) => c.query(`select pg_drop_replication_slot($1)`, [source!.slot]));
  }
}

async function main(): Promise<void> {
  const o = parseOptions();
  await createSourceDatabase({ url: LOGICAL, tables: 'all', forCapture: true });
  await seed(LOGICAL, o.skus);
  const [source] = captureSources({
    DATABASE_URL: PIPELINE,
    INVENTORY_DATABASE_URL: LOGICAL,
    ORDERS_DATABASE_URL: LOGICAL,
  });
  await withClient(LOGICAL, (c) => ensureSlot(c, source!.slot)); // a slot, as in production, while WAL is measured

  console.log(`WAL per order transaction (${o.orders} each, taking turns):`);
  const wal = await measureWal(o);
  const tick = await withClient(LOGICAL, (c) => tickWal(c));
  await withClient(LOGICAL, (c) => c.query(`select pg_drop_replication_slot($1)`, [source!.slot]));
  for (const [k, v] of Object.entries(wal))
    console.log(`  ${k.padEnd(8)} ${v.toFixed(0).padStart(6)} bytes  ${(v / wal.none!).toFixed(3)}× no capture`);
  console.log(
    `  a tick: ${tick.toFixed(0)} bytes of WAL; at CAPTURE_TICK_MS=100 that is ${((tick * 10) / 1024).toFixed(1)} KiB/s per source, whatever the change rate`,
  );

  console.log(
    `Capture of a ${o.changes.toLocaleString()}-change backlog (${o.txRows} changes per source transaction):`,
  );
  const cap = await measureCapture(o);
  console.log(
    `  backlog written in ${cap.writeSeconds.toFixed(1)} s (${Math.round(o.changes / cap.writeSeconds).toLocaleString()} changes/s by the source)`,
  );
  console.log(
    `  captured ${cap.rows.toLocaleString()} rows in ${cap.seconds.toFixed(1)} s: ${Math.round(cap.rows / cap.seconds).toLocaleString()} changes/s into the outbox`,
  );
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
