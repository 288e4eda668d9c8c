/**
 * The outbox and its consumers: cursors (cursor.ts), reads of the rows between two snapshots
 * (delta.ts), the drain's lease and lock (lease.ts), and what status and metrics report
 * (status.ts). Every module that reads the outbox goes through here.
 */
export * from './cursor';
export * from './delta';
export * from './lease';
export * from './status';
export * from './shards';
