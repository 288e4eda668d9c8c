/**
 * Versioned, idempotent SQL migrations: every file in migrations/ runs once, in name order, in
 * its own transaction, under an advisory lock so two processes starting together cannot race.
 * The files themselves are written to be re-runnable as well (`if not exists`, `or replace`).
 * A file named `*.notx.sql` (CREATE INDEX CONCURRENTLY cannot run in a transaction) runs statement
 * by statement (one per `;` at a line's end) outside one, and is recorded once all succeeded.
 */
import { redactUrl } from '../config/redact';
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { withTransaction } from './transaction';

export const MIGRATIONS_DIR = path.resolve(__dirname, '..', 'migrations');
const LOCK_KEY = 7_461_001; // arbitrary, constant: "fresh-badges migrations"

export interface MigrationResult {
  applied: string[];
  alreadyApplied: string[];
}

export async function migrate(client: pg.Pool | pg.Client, dir = MIGRATIONS_DIR): Promise<MigrationResult> {
  const files = fs
    .readdirSync(dir)
    .filter((f) => /^\d{3}_.+\.sql$/.test(f))
    .sort();
  const conn = client instanceof pg.Pool ? await client.connect() : client;
  const result: MigrationResult = { applied: [], alreadyApplied: [] };
  try {
    await conn.query('select pg_advisory_lock($1)', [LOCK_KEY]);
    // Nothing pending: no DDL at all, so a role without CREATE rights (the worker's, under
    // sql/least-privilege.sql) can start `npm start` on a database its owner has migrated.
    if ((await conn.query(`select to_regclass('pipeline.schema_migrations') is not null as ok`)).rows[0].ok) {
      const applied = new Set(
        (await conn.query('select version from pipeline.schema_migrations')).rows.map((r) => r.version),
      );
      if (files.every((f) => applied.has(f))) {
        result.alreadyApplied.push(...files);
        return result;
      }
    }
    await conn.query(`create schema if not exists pipeline;
      create table if not exists pipeline.schema_migrations (
        version text primary key, applied_at timestamptz not null default now())`);
    const done = new Set(
      (await conn.query('select version from pipeline.schema_migrations')).rows.map((r) => r.version),
    );
    for (const file of files) {
      if (done.has(file)) {
        result.alreadyApplied.push(file);
        continue;
      }
      const sql = fs.readFileSync(path.join(dir, file), 'utf8');
      try {
        if (file.endsWith('.notx.sql')) {
          for (const statement of sql.split(/;\s*$/m).filter((s) => s.replace(/--.*$/gm, '').trim()))
            await conn.query(statement);
          await conn.query('insert into pipeline.schema_migrations (version) values ($1)', [file]);
        } else
          await withTransaction(conn, async (tx) => {
            await tx.query(sql);
            await tx.query('insert into pipeline.schema_migrations (version) values ($1)', [file]);
          });
      } catch (err) {
        const code = (err as { code?: string }).code;
        const hint =
          code === '42501'
            ? ' (the role lacks the rights: migrations run as the database owner; see sql/least-privilege.sql)'
            : code === '55P03'
              ? ' (a transaction that wrote the table it changes is still open; when it has ended, run the migrations again: npm run migrate)'
              : '';
        throw new Error(`migration ${file} failed: ${(err as Error).message}${hint}`, { cause: err });
      }
      result.applied.push(file);
    }
  } finally {
    await conn.query('select pg_advisory_unlock($1)', [LOCK_KEY]).catch(() => undefined);
    if (client instanceof pg.Pool) (conn as pg.PoolClient).release();
  }
  return result;
}

/** Creates the database named in the URL when it does not exist (connecting to `postgres`). */
export async function ensureDatabase(databaseUrl: string): Promise<boolean> {
  const target = new URL(databaseUrl);
  const dbName = decodeURIComponent(target.pathname.replace(/^\//, ''));
  if (!dbName) throw new Error(`DATABASE_URL names no database: ${redactUrl(databaseUrl)}`);
  const admin = new URL(databaseUrl);
  admin.pathname = '/postgres';
  const client = new pg.Client({ connectionString: admin.toString() });
  await client.connect();
  try {
    const exists = await client.query('select 1 from pg_database where datname = $1', [dbName]);
    if (exists.rowCount) return false;
    await client.query(`create database ${pg.escapeIdentifier(dbName)}`);
    return true;
  } catch (err) {
    // Two processes creating it at once: the loser sees duplicate_database, which is fine.
    if ((err as { code?: string }).code === '42P04') return false;
    throw err;
  } finally {
    await client.end();
  }
}

export const LEAST_PRIVILEGE_SQL = path.resolve(__dirname, '..', 'sql', 'least-privilege.sql');

/** Applies sql/least-privilege.sql (roles and grants; idempotent). Needs a superuser or CREATEROLE. */
export async function applyLeastPrivilege(client: pg.Pool | pg.Client): Promise<void> {
  await client.query(fs.readFileSync(LEAST_PRIVILEGE_SQL, 'utf8'));
}
