/**
 * A load source that reaches 10,000+ changes/s on this machine, where the Node simulator (one
 * event loop sharing two cores with everything else) tops out near 4,000: pgbench, the standard
 * PostgreSQL load tool (it ships with the server package), running an order-service transaction
 * written as one statement. `-R` paces it (Poisson arrivals, as real traffic). The workloads:
 *  - `order` (one database holds every table): a two-line order reserves a unit of two SKUs at
 *    their first FC and inserts the order rows, four row changes per transaction;
 *  - with the inventory and the orders in databases of their own (capture from the WAL), that
 *    order's two halves as the two services would write them: `inventory-reserve` (the two
 *    inventory rows, against the inventory database) and `order-insert` (the two order rows,
 *    against the orders database), two row changes per transaction each.
 * The outbox sees exactly changes-per-transaction x tps changes/s.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { DATA_DIR } from '../lib/temporal-server';

const PICK_TWO = `\\set s random(0, :skus - 1)
\\set s2 (:s + 1) % :skus
\\set f :s % :fcs
\\set f2 :s2 % :fcs
`;
const TWO_STOCKED = `(('SKU-' || lpad(:s::text, 7, '0'), 'FC-' || lpad(:f::text, 3, '0')),
                             ('SKU-' || lpad(:s2::text, 7, '0'), 'FC-' || lpad(:f2::text, 3, '0')))`;

export const WORKLOADS = {
  order: {
    changesPerTransaction: 4,
    script: `${PICK_TWO}with inv as (
  update shop.inventory set reserved = reserved + 1, updated_at = now()
   where (sku_id, fc_id) in ${TWO_STOCKED}
  returning sku_id, fc_id)
insert into shop.orders (sku_id, fc_id, qty, status) select sku_id, fc_id, 1, 'placed' from inv;
`,
  },
  'inventory-reserve': {
    changesPerTransaction: 2,
    script: `${PICK_TWO}update shop.inventory set reserved = reserved + 1, updated_at = now()
 where (sku_id, fc_id) in ${TWO_STOCKED};
`,
  },
  'order-insert': {
    changesPerTransaction: 2,
    script: `${PICK_TWO}insert into shop.orders (sku_id, fc_id, qty, status)
values ('SKU-' || lpad(:s::text, 7, '0'), 'FC-' || lpad(:f::text, 3, '0'), 1, 'placed'),
       ('SKU-' || lpad(:s2::text, 7, '0'), 'FC-' || lpad(:f2::text, 3, '0'), 1, 'placed');
`,
  },
} as const;

export type PgbenchWorkload = keyof typeof WORKLOADS;

/** An order of two lines: two inventory rows reserved, two order rows inserted. */
export const CHANGES_PER_TRANSACTION = WORKLOADS.order.changesPerTransaction;

function pgbenchBinary(): string {
  for (const dir of (process.env.PATH ?? '').split(':'))
    if (fs.existsSync(path.join(dir, 'pgbench'))) return path.join(dir, 'pgbench');
  const versions = fs.existsSync('/usr/lib/postgresql') ? fs.readdirSync('/usr/lib/postgresql') : [];
  // the newest major version first, by number ("16" after "9.6")
  for (const v of versions.sort((a, b) => parseFloat(b) - parseFloat(a)))
    if (fs.existsSync(`/usr/lib/postgresql/${v}/bin/pgbench`)) return `/usr/lib/postgresql/${v}/bin/pgbench`;
  throw new Error('pgbench not found (it ships with the PostgreSQL server package: apt-get install postgresql)');
}

export interface PgbenchResult {
  transactions: number;
  changes: number;
  changesPerS: number;
}

/** Runs pgbench for `seconds` at `changesPerS` (0: as fast as it goes) against the catalogue. */
export async function runPgbench(opts: {
  databaseUrl: string;
  /** `order` unless said. */
  workload?: PgbenchWorkload;
  changesPerS: number;
  seconds: number;
  clients?: number;
  skus: number;
  fcs: number;
}): Promise<PgbenchResult> {
  const workload = WORKLOADS[opts.workload ?? 'order'];
  const perTransaction = workload.changesPerTransaction;
  const file = path.join(DATA_DIR, 'bench', `pgbench-${opts.workload ?? 'order'}.sql`);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, workload.script);
  const u = new URL(opts.databaseUrl);
  const args = [
    '-n', // no vacuum of pgbench's own tables (there are none)
    '-M',
    'prepared',
    '-c',
    String(opts.clients ?? 8),
    '-j',
    '2',
    '-T',
    String(opts.seconds),
    '-f',
    file,
    '-D',
    `skus=${opts.skus}`,
    '-D',
    `fcs=${opts.fcs}`,
    '-h',
    u.hostname,
    '-p',
    u.port || '5432',
    '-U',
    decodeURIComponent(u.username || 'postgres'),
    ...(opts.changesPerS > 0 ? ['-R', String(Math.max(1, Math.round(opts.changesPerS / perTransaction)))] : []),
    decodeURIComponent(u.pathname.slice(1)),
  ];
  const env = { ...process.env, ...(u.password ? { PGPASSWORD: decodeURIComponent(u.password) } : {}) };
  const out = await new Promise<string>((resolve, reject) =>
    execFile(pgbenchBinary(), args, { env, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) =>
      err ? reject(new Error(`pgbench failed: ${stderr || err.message}`)) : resolve(stdout),
    ),
  );
  const processed = Number(/number of transactions actually processed: (\d+)/.exec(out)?.[1]);
  if (!Number.isFinite(processed)) throw new Error(`pgbench: unexpected output:\n${out}`);
  return {
    transactions: processed,
    changes: processed * perTransaction,
    changesPerS: (processed * perTransaction) / opts.seconds,
  };
}
