/**
 * `npm run migrate [--roles] [DATABASE_URL …]`: create the database if needed and apply every
 * pending migration; with --roles also the least-privilege roles and grants (sql/least-privilege.sql).
 */
import pg from 'pg';
import { loadConfig } from '../config';
import { redactText } from '../config/redact';
import { applyLeastPrivilege, ensureDatabase, migrate } from '../db/migrate';

async function main(): Promise<void> {
  const config = loadConfig();
  const args = process.argv.slice(2);
  const roles = args.includes('--roles');
  const given = args.filter((a) => a !== '--roles');
  const bad = given.find((a) => a.startsWith('-'));
  if (bad) throw new Error(`unknown option ${bad} (usage: npm run migrate -- [--roles] [DATABASE_URL …])`);
  const urls = given.length ? given : [config.DATABASE_URL];
  for (const url of urls) {
    const created = await ensureDatabase(url);
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      const r = await migrate(client);
      if (roles) await applyLeastPrivilege(client);
      const where = new URL(url).pathname.slice(1);
      console.log(
        `${where}: ${created ? 'created, ' : ''}${r.applied.length} applied (${r.applied.join(', ') || 'none'}), ${r.alreadyApplied.length} already applied${roles ? '; least-privilege roles and grants applied' : ''}`,
      );
    } finally {
      await client.end();
    }
  }
}

main().catch((err) => {
  console.error(`migrate: ${redactText(err.message)}`);
  process.exit(1);
});
