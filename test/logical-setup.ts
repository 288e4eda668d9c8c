/**
 * For the logical run (vitest.logical.config.mts): a PostgreSQL server of its own, holding the
 * run's pipeline database and its two source databases (created by test/global-setup.ts, listed
 * after this file). `npm test` runs the logical run beside the default run (scripts/test.sh); on
 * one server the two would share the source databases' and slots' names of the default run's
 * logical-* files, transaction ids, connections and max_replication_slots.
 */
import { PrivatePostgres } from './support/private-postgres';

let postgres: PrivatePostgres | undefined;

export async function setup(): Promise<void> {
  postgres = await PrivatePostgres.forTestRun('test-logical-pg', 'fresh_badges_test_logical');
}

export async function teardown(): Promise<void> {
  await postgres?.destroy();
}
