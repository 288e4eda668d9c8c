/** Where the tests' PostgreSQL database and Redis db are (a module of its own: env.ts and split-sources.ts both need them). */
export const TEST_DATABASE_URL =
  process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/fresh_badges_test';
export const TEST_REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379/15';
