/** `npm run migrate`: create the database if needed and apply every pending migration. */
import pg from 'pg';
import { loadConfig } from '../config';
import { ensureDatabase, migrate } from '../db/migrate';

async function main(): Promise<void> {
  const config = loadConfig();
  const urls = process.argv.slice(2).length ? process.argv.slice(2) : [config.DATABASE_URL];
  for (const url of urls) {
    const created = await ensureDatabase(url);
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      const r = await migrate(client);
      const where = new URL(url).pathname.slice(1);
      console.log(`${where}: ${created ? 'created, ' : ''}${r.applied.length} applied (${r.applied.join(', ') || 'none'}), ${r.alreadyApplied.length} already applied`);
    } finally {
      await client.end();
    }
  }
}

main().catch((err) => {
  console.error(`migrate: ${err.message}`);
  process.exit(1);
});
