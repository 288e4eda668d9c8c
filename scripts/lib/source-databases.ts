/**
 * Source databases for tests and benchmarks: created fresh on the local server with the contract's
 * shop schema, and set up for capture by sql/source-setup.sql (what a database team runs once).
 * A database holding a replication slot cannot be dropped: its slots are dropped first.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { dropSlot } from '../../capture/slot';

const ROOT = path.resolve(__dirname, '..', '..');

export function withDatabase(url: string, db: string): string {
  const u = new URL(url);
  u.pathname = `/${db}`;
  return u.toString();
}

export async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url, options: '-c TimeZone=UTC' });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/** Which of the contract's tables a source database holds, and whether it is set up for capture. */
export interface SourceDatabaseSpec {
  url: string;
  tables: 'inventory' | 'orders' | 'all';
  /** Run sql/source-setup.sql (publication, replica identity, the reader role). */
  forCapture: boolean;
}

const DROP_FOR: Record<SourceDatabaseSpec['tables'], string | null> = {
  all: null,
  inventory: 'drop table shop.orders',
  orders: 'drop table shop.inventory, shop.region_fc, shop.skus, shop.fulfillment_centers',
};

/** Drops (with its slots) and re-creates a source database. */
export async function createSourceDatabase(spec: SourceDatabaseSpec): Promise<void> {
  const db = decodeURIComponent(new URL(spec.url).pathname.slice(1));
  await withClient(withDatabase(spec.url, 'postgres'), async (admin) => {
    await admin.query(
      `select pg_drop_replication_slot(slot_name) from pg_replication_slots where database = $1 and not active`,
      [db],
    );
    await admin.query(`drop database if exists ${pg.escapeIdentifier(db)} with (force)`);
    await admin.query(`create database ${pg.escapeIdentifier(db)}`);
  });
  await withClient(spec.url, async (c) => {
    await c.query(fs.readFileSync(path.join(ROOT, 'migrations', '001_shop_schema.sql'), 'utf8'));
    const drop = DROP_FOR[spec.tables];
    if (drop) await c.query(drop);
    if (spec.forCapture) await c.query(fs.readFileSync(path.join(ROOT, 'sql', 'source-setup.sql'), 'utf8'));
  });
}

/** A source URL as the capture role of sql/source-setup.sql (trust authentication locally). */
export function readerUrl(url: string): string {
  const u = new URL(url);
  u.username = 'fresh_badges_reader';
  return u.toString();
}

/**
 * Drops the slots on the server of `adminUrl` (a slot left behind keeps WAL forever). A capture
 * session may still hold one for a moment after its run ended: its walsender is ended, then the
 * slot dropped once the server shows it inactive (about 5 s at most per slot).
 */
export async function dropSlots(adminUrl: string, slots: string[]): Promise<void> {
  await withClient(adminUrl, async (admin) => {
    for (const slot of slots) {
      await admin.query(
        `select pg_terminate_backend(active_pid) from pg_replication_slots where slot_name = $1 and active`,
        [slot],
      );
      for (let i = 0; i < 50; i++) {
        const r = await admin.query(`select active from pg_replication_slots where slot_name = $1`, [slot]);
        if (!r.rowCount) break;
        if (!r.rows[0].active) {
          await dropSlot(admin, slot).catch(() => {});
          break;
        }
        await sleep(100);
      }
    }
  });
}
