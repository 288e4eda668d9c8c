/**
 * All configuration in one place: environment variables with local defaults, validated once at
 * start so a typo fails with a message that names the variable, not with a stack trace later.
 * Queue names, schedule ids and intervals live here too (one module, as in dust's connectors).
 */
import { CONFIG_DEFAULTS } from './defaults';
import { SECRET_KEYS } from './redact';
import { CONFIGURATION_ERROR_TYPE } from './error-types';
import { z } from 'zod';

/**
 * A whole number in decimal digits (spaces around it allowed). Not Number(): it reads " " as 0,
 * "0x10" as 16 and "1e3" as 1000, so a typo would run with a value nobody asked for.
 */
/** A whole number in [min, max]; `maxWhy` says why the bound is there when a value goes past it. */
const intFrom = (def: number, min: number, max: number, maxWhy?: string) =>
  z
    .string()
    .trim()
    .regex(/^-?\d+$/, 'must be a whole number in decimal digits')
    .transform(Number)
    .pipe(
      z
        .number()
        .int()
        .min(min)
        .max(max, maxWhy ? `must be at most ${max}: ${maxWhy}` : undefined),
    )
    .default(def);

const url = (protocols: string[]) =>
  z.string().refine(
    (v) => {
      try {
        return protocols.includes(new URL(v).protocol);
      } catch {
        return false;
      }
    },
    `must be a URL starting with ${protocols.map((p) => `${p}//`).join(' or ')}`,
  );

const EnvSchema = z.object({
  DATABASE_URL: url(['postgres:', 'postgresql:']).default('postgres://postgres@127.0.0.1:5432/fresh_badges'),
  /**
   * Optional read replica of DATABASE_URL for backfill/verify/rebuild reads (and of a source that
   * is DATABASE_URL); the primary when empty.
   */
  REPLICA_DATABASE_URL: z.union([z.literal(''), url(['postgres:', 'postgresql:'])]).default(''),
  /**
   * The source databases (docs/capture.md): the inventory service's (skus, fulfillment_centers,
   * region_fc, inventory) and the order service's (orders). Empty: DATABASE_URL.
   */
  INVENTORY_DATABASE_URL: z.union([z.literal(''), url(['postgres:', 'postgresql:'])]).default(''),
  ORDERS_DATABASE_URL: z.union([z.literal(''), url(['postgres:', 'postgresql:'])]).default(''),
  /**
   * Logical capture: a read replica (streaming standby) of each source database, where backfill,
   * verify and repairs read rows (capture/sources.ts). Empty: REPLICA_DATABASE_URL when the
   * source is DATABASE_URL, else the source itself.
   */
  INVENTORY_REPLICA_DATABASE_URL: z.union([z.literal(''), url(['postgres:', 'postgresql:'])]).default(''),
  ORDERS_REPLICA_DATABASE_URL: z.union([z.literal(''), url(['postgres:', 'postgresql:'])]).default(''),
  /**
   * How changes reach the outbox: `trigger` (capture triggers on the shop tables, which then live
   * in DATABASE_URL) or `logical` (a logical replication slot per source database, streamed by
   * the capture workflows; nothing is written into a source).
   */
  CAPTURE_MODE: z.enum(['trigger', 'logical']).default('trigger'),
  /** Logical capture: how often a tick goes into each source's WAL (how fresh `asOf` can be). */
  CAPTURE_TICK_MS: intFrom(100, 10, 10_000),
  /** Logical capture: how often the schedule fires a capture run per source (a watchdog; each run streams until its interval is up). */
  CAPTURE_INTERVAL_MS: intFrom(60_000, 5_000, 3_600_000),
  /**
   * Logical capture: each capture activity streams this long. Between two activities the stream
   * waits for a Temporal round trip (tens of ms on a busy machine, seen in freshness): longer
   * activities make that wait rarer; heartbeats show the position meanwhile.
   */
  CAPTURE_ACTIVITY_BUDGET_MS: intFrom(60_000, 1_000, 300_000),
  REDIS_URL: url(['redis:', 'rediss:']).default('redis://127.0.0.1:6379/0'),
  /**
   * A Redis Cluster as the online store: its seed nodes, comma-separated `host:port` or
   * `redis://[user:password@]host:port` (the first credentials given are used for every node).
   * Empty: the one Redis at REDIS_URL.
   */
  REDIS_CLUSTER_NODES: z
    .string()
    .regex(/^[^\s]*$/, 'comma-separated host:port or redis:// URLs, no spaces')
    .default(''),
  /**
   * How many partitions (hash slots) the store is split into (store/keys.ts): 0 picks 1 on a single
   * Redis and 16 on a cluster. Changing it on a live install rebuilds the store (docs/operations.md).
   */
  STORE_PARTITIONS: intFrom(0, 0, 1024),
  /** refuse: the worker will not start on a Redis whose maxmemory-policy can evict keys; warn: start anyway, logging why not. */
  REDIS_EVICTION_CHECK: z.enum(['refuse', 'warn']).default('refuse'),
  /** Every key the pipeline writes starts with this, so one Redis can hold several stores. */
  REDIS_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_:.-]{0,32}$/, 'letters, digits and _:.- only, at most 32')
    .default('fb:'),
  TEMPORAL_ADDRESS: z
    .string()
    .regex(/^[^\s:]+:\d{1,5}$/, 'must be host:port')
    .default('127.0.0.1:7233'),
  TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
  TEMPORAL_TASK_QUEUE: z.string().min(1).default('fresh-badges'),
  /**
   * Which task queues this worker process polls: `all` (both), `pipeline` (drain, compaction,
   * verify, backfill, replays, operator workflows: TEMPORAL_TASK_QUEUE) or `batch` (landing and
   * the nightly export: TEMPORAL_TASK_QUEUE + "-batch"). `npm start` runs the two in separate
   * processes, so the minute's Parquet landing never shares an event loop with the drain.
   */
  WORKER_TASK_QUEUES: z.enum(['all', 'pipeline', 'batch']).default('all'),
  /** Scheduling priority (nice) a `batch` worker process lowers itself to: the drain goes first. */
  BATCH_WORKER_NICE: intFrom(10, 0, 19),
  TEMPORAL_UI_PORT: intFrom(8233, 1, 65535),
  /**
   * A real Temporal cluster (Temporal Cloud or self-hosted with mTLS): TEMPORAL_TLS=true turns TLS
   * on (the system's CAs, or TEMPORAL_TLS_CA); TEMPORAL_TLS_CERT/KEY are the client certificate
   * files for mTLS; TEMPORAL_API_KEY authenticates with an API key (implies TLS). Local dev: none.
   */
  TEMPORAL_TLS: z
    .enum(['true', 'false'])
    .default('false')
    .transform((v) => v === 'true'),
  /**
   * Runs carry FreshBadgesKind/Shard/Outcome search attributes (workflows/search-attributes.ts),
   * registered at start where the server allows it; false where they cannot be created.
   */
  TEMPORAL_SEARCH_ATTRIBUTES: z
    .enum(['true', 'false'])
    .default('true')
    .transform((v) => v === 'true'),
  TEMPORAL_TLS_CA: z.string().min(1).optional(),
  TEMPORAL_TLS_CERT: z.string().min(1).optional(),
  TEMPORAL_TLS_KEY: z.string().min(1).optional(),
  TEMPORAL_API_KEY: z.string().min(1).optional(),
  API_PORT: intFrom(8080, 0, 65535),
  /** Prometheus metrics of the worker (0: off). */
  WORKER_METRICS_PORT: intFrom(9464, 0, 65535),
  /** `npm start`'s batch worker process (landing, export) serves its metrics here (0: off). */
  BATCH_WORKER_METRICS_PORT: intFrom(9465, 0, 65535),
  /** Interface the read API listens on; 0.0.0.0 to serve other hosts. */
  API_HOST: z.string().min(1).default('127.0.0.1'),
  /** Reads say stale: true when the drain has not confirmed being caught up for this long. */
  STALE_AFTER_MS: intFrom(10_000, 100, 3_600_000),

  /**
   * How many drain shards apply changes in parallel (outbox/shards.ts), each its own workflow chain,
   * lease and cursor over a disjoint set of store partitions: at most STORE_PARTITIONS. Changing it
   * on a live install is `npm run ops -- reshard --shards N` (docs/operations.md).
   */
  DRAIN_SHARDS: intFrom(1, 1, 64),
  /** How often the schedule fires a drain run; each run drains until its interval is up. */
  DRAIN_INTERVAL_MS: intFrom(60_000, 5_000, 3_600_000),
  /** Outbox rows read, folded and applied per batch activity. */
  DRAIN_BATCH_SIZE: intFrom(CONFIG_DEFAULTS.DRAIN_BATCH_SIZE, 1, 100_000),
  /** While working off a backlog the batch size doubles up to this. */
  DRAIN_MAX_BATCH_SIZE: intFrom(CONFIG_DEFAULTS.DRAIN_MAX_BATCH_SIZE, 1, 500_000),
  /** Backfill: rows per chunk and the rate limit on source rows read per second (0: none). */
  BACKFILL_CHUNK_ROWS: intFrom(CONFIG_DEFAULTS.BACKFILL_CHUNK_ROWS, 100, 100_000),
  BACKFILL_ROWS_PER_S: intFrom(CONFIG_DEFAULTS.BACKFILL_ROWS_PER_S, 0, 10_000_000),
  /** When nothing is new, a batch waits at most this long for rows before returning. */
  DRAIN_IDLE_WAIT_MS: intFrom(CONFIG_DEFAULTS.DRAIN_IDLE_WAIT_MS, 0, 10_000),
  /**
   * Each drain activity applies batches back to back (and polls when idle) for this long, so a
   * shard runs about 60 s / this many activities a minute whatever the change rate; 0: one batch
   * per activity.
   */
  DRAIN_ACTIVITY_BUDGET_MS: intFrom(CONFIG_DEFAULTS.DRAIN_ACTIVITY_BUDGET_MS, 0, 60_000),
  /** How long one run of a drain chain lasts before it continues as new (one row in the run list). */
  CHAIN_RUN_MS: intFrom(CONFIG_DEFAULTS.CHAIN_RUN_MS, 5_000, 86_400_000),
  /** While waiting, how often the outbox is polled (one indexed query). */
  DRAIN_POLL_MS: intFrom(50, 5, 5_000),
  /** Store operations per Lua call: small enough that a call never blocks readers for long. */
  APPLY_CHUNK: intFrom(250, 1, 10_000),
  /** How long a SKU tombstone (deleted SKU) stays to fence off late, older changes. */
  TOMBSTONE_TTL_S: intFrom(7 * 24 * 3600, 1, 365 * 24 * 3600),
  /** How long a per-FC, per-day load counter lives after the end of its UTC day (the days the store keeps). */
  LOAD_TTL_S: intFrom(3 * 24 * 3600, 60, 365 * 24 * 3600),
  DRAIN_LEASE_TTL_MS: intFrom(30_000, 1_000, 600_000),
  /**
   * A change of DRAIN_SHARDS freezes the drain; the re-split run renews this lease on the freeze
   * while it works. A run that is gone for longer (terminated, its worker dead) loses it, and the
   * drains lift the freeze themselves.
   */
  RESHARD_FREEZE_LEASE_MS: intFrom(30_000, 1_000, 600_000),
  /** Outbox rows every consumer has committed are kept this long (replays, the nightly export). */
  OUTBOX_RETENTION_H: intFrom(
    48,
    1,
    144,
    // activities/dead-letters/reapply.ts: RETRIED_WINDOW_MS, bounded by a load delta's 7-day once-marker
    'a Redis back from a file older than 6 days would be re-delivered to without the dead-letter retries it lost, whose subjects would then answer fresh',
  ),
  /** Retried and discarded dead letters are kept this long (a retried one at least RETRIED_WINDOW_MS, 6 days). */
  DEAD_LETTER_RETENTION_D: intFrom(30, 1, 3650),
  /** How often the compaction schedule fires. */
  COMPACTION_INTERVAL_MS: intFrom(3_600_000, 60_000, 7 * 24 * 3_600_000),
  /** Rows deleted per compaction transaction, and at most per run. */
  COMPACTION_CHUNK: intFrom(10_000, 100, 1_000_000),
  COMPACTION_MAX_ROWS: intFrom(2_000_000, 1_000, 1_000_000_000),
  /** Store keys visited per compaction run when sweeping expired field tombstones. */
  COMPACTION_SWEEP_KEYS: intFrom(200_000, 100, 100_000_000),
  /**
   * Continuous verification: every VERIFY_INTERVAL_MS a sample of VERIFY_SAMPLE_SKUS SKUs (and
   * every FC, region and daily load) is compared with the source and what differs is repaired.
   */
  VERIFY_INTERVAL_MS: intFrom(300_000, 10_000, 24 * 3_600_000),
  VERIFY_SAMPLE_SKUS: intFrom(500, 1, 1_000_000),
  /** Landing area and nightly Parquet exports live under this directory. */
  EXPORT_DIR: z.string().min(1).default('.data/export'),
  /** How often applied changes are landed as Parquet (one file per interval and day). */
  LANDING_INTERVAL_MS: intFrom(60_000, 5_000, 3_600_000),
  LANDING_MAX_ROWS: intFrom(500_000, 1_000, 10_000_000),
  /**
   * Landing reads at most this many outbox rows per second (0: no limit): a minute of changes is
   * spread over the minute instead of read in one burst beside the drain. Keep it well above the
   * change rate (the default is 2.5 times 10,000 changes/s).
   */
  LANDING_ROWS_PER_S: intFrom(25_000, 0, 10_000_000),
  /**
   * Landing days are kept at least this many days (the export of a day needs that day's files);
   * an older one goes once its partition is complete (activities/export/landing-retention.ts).
   */
  LANDING_RETENTION_D: intFrom(14, 2, 3650),
  /** The nightly export runs at this UTC hour for the previous UTC day. */
  EXPORT_HOUR_UTC: intFrom(2, 0, 23),
  /** DuckDB memory limit for the export (it spills to disk beyond it). */
  EXPORT_MEMORY_LIMIT: z
    .string()
    .regex(/^\d+(\.\d+)?\s*(KB|MB|GB|TB)$/i, 'like 512MB or 2GB')
    .default('1GB'),
  /** The least severe log line written, by the worker, the read API, `npm start` and the simulator (the Temporal SDK's too). */
  LOG_LEVEL: z.enum(['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR']).default('INFO'),
  /**
   * How those logs are written: `json` (one object per line: level, time, msg and fields), `pretty`
   * (one readable line each) or `auto` (pretty on a terminal, JSON otherwise). The `ops` CLI's
   * output is for people and stays text.
   */
  LOG_FORMAT: z.enum(['auto', 'json', 'pretty']).default('auto'),
  /** Warn when one write transaction has been open this long (it holds back compaction and vacuum, not freshness). */
  STALL_WARN_MS: intFrom(30_000, 1_000, 3_600_000),
});

export type Config = z.infer<typeof EnvSchema>;

/** Every environment variable the configuration reads (docs/configuration.md has a row for each). */
export const CONFIG_VARIABLES: readonly string[] = Object.keys(EnvSchema.shape);

/** The two logging settings alone: every process logs, also before (or without) a valid full configuration. */
export function loadLogConfig(env: NodeJS.ProcessEnv = process.env): Pick<Config, 'LOG_LEVEL' | 'LOG_FORMAT'> {
  const schema = EnvSchema.pick({ LOG_LEVEL: true, LOG_FORMAT: true });
  const parsed = schema.safeParse({ LOG_LEVEL: env.LOG_LEVEL || undefined, LOG_FORMAT: env.LOG_FORMAT || undefined });
  if (!parsed.success)
    throw new ConfigurationError(
      `invalid configuration:\n${parsed.error.issues.map((i) => `  ${i.path.join('.')}=${JSON.stringify(env[String(i.path[0])])}: ${i.message}`).join('\n')}`,
    );
  return parsed.data;
}

export class ConfigurationError extends Error {
  override name = CONFIGURATION_ERROR_TYPE;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const picked: Record<string, string> = {};
  for (const key of Object.keys(EnvSchema.shape)) {
    const value = env[key];
    if (value !== undefined && value !== '') picked[key] = value;
  }
  const parsed = EnvSchema.safeParse(picked);
  if (!parsed.success) {
    // A value that may hold a secret is never echoed, even when it is invalid.
    const shown = (key: string) => (SECRET_KEYS.has(key) ? '(value not shown)' : JSON.stringify(picked[key]));
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}=${shown(String(i.path[0]))}: ${i.message}`);
    throw new ConfigurationError(`invalid configuration:\n${lines.join('\n')}`);
  }
  const config = parsed.data;
  if (config.REDIS_CLUSTER_NODES) {
    const bad = config.REDIS_CLUSTER_NODES.split(',').filter((seed) => !validSeed(seed));
    if (bad.length)
      throw new ConfigurationError(
        `invalid configuration:\n  REDIS_CLUSTER_NODES: (value not shown): ${bad.length} seed(s) are not host:port or redis://host:port`,
      );
  }
  const splitSources = [config.INVENTORY_DATABASE_URL, config.ORDERS_DATABASE_URL].some(
    (u) => u !== '' && u !== config.DATABASE_URL,
  );
  if (config.CAPTURE_MODE === 'trigger' && splitSources)
    // the triggers write the outbox in the source's own transaction: the outbox must be there
    throw new ConfigurationError(
      'invalid configuration:\n  CAPTURE_MODE=trigger: the trigger capture needs the shop tables in DATABASE_URL; with INVENTORY_DATABASE_URL or ORDERS_DATABASE_URL set to another database use CAPTURE_MODE=logical',
    );
  if (config.STORE_PARTITIONS === 0) config.STORE_PARTITIONS = config.REDIS_CLUSTER_NODES ? 16 : 1;
  if (config.REDIS_CLUSTER_NODES && config.STORE_PARTITIONS === 1)
    // one partition has no hash tag: its Lua calls would span slots (CROSSSLOT)
    throw new ConfigurationError(
      'invalid configuration:\n  STORE_PARTITIONS=1: a Redis Cluster needs at least 2 partitions (REDIS_CLUSTER_NODES is set)',
    );
  if (config.DRAIN_SHARDS > config.STORE_PARTITIONS)
    // a shard drains whole partitions
    throw new ConfigurationError(
      `invalid configuration:\n  DRAIN_SHARDS=${config.DRAIN_SHARDS}: each drain shard owns whole store partitions, and STORE_PARTITIONS is ${config.STORE_PARTITIONS}; set STORE_PARTITIONS to at least ${config.DRAIN_SHARDS} (16 is a good choice on one Redis too)`,
    );
  return config;
}

/** How many compaction intervals TOMBSTONE_TTL_S must cover (checkRunSettings). */
export const TTL_COMPACTION_INTERVALS = 3;

/**
 * Settings that must agree for the pipeline to run (not only to load): checked by the worker and
 * `npm start` before they start anything. Kept out of loadConfig because tests run pieces of the
 * pipeline with a tombstone TTL of seconds and no compaction schedule at all.
 *
 * A discontinued SKU's key expires TOMBSTONE_TTL_S after its discontinuation; only then may a
 * writer the drain does not order (a backfill chunk read before the discontinuation) fill it
 * again, and what stops it is the deletion fence (store/fence.ts), which the tombstone sweep of
 * each compaction run moves when it starts. The fence must have passed the discontinuation before
 * the key expires. A discontinuation just after a sweep started waits for the next run; a run
 * that outlasts its interval makes the schedule skip a fire (overlap SKIP); so the TTL covers
 * three intervals: two fires, one of them possibly skipped, and the run that moves the fence.
 */
export function checkRunSettings(config: Config): void {
  const needS = Math.ceil((TTL_COMPACTION_INTERVALS * config.COMPACTION_INTERVAL_MS) / 1000);
  if (config.TOMBSTONE_TTL_S < needS)
    throw new ConfigurationError(
      `invalid configuration:\n  TOMBSTONE_TTL_S=${config.TOMBSTONE_TTL_S}: a discontinued SKU's key could expire before compaction has moved the deletion fence past its discontinuation (COMPACTION_INTERVAL_MS=${config.COMPACTION_INTERVAL_MS}, every ${config.COMPACTION_INTERVAL_MS / 1000} s), and a backfill read before it could bring the SKU back; set TOMBSTONE_TTL_S to at least ${needS} (${TTL_COMPACTION_INTERVALS} compaction intervals) or run compaction more often`,
    );
}

function validSeed(seed: string): boolean {
  try {
    const u = new URL(seed.includes('://') ? seed : `redis://${seed}`);
    return ['redis:', 'rediss:'].includes(u.protocol) && u.hostname !== '' && u.pathname.replace('/', '') === '';
  } catch {
    return false;
  }
}

/**
 * The task queue of landing and the nightly export (heavy, not latency-sensitive): the pipeline's
 * queue + "-batch", so a test's own queue name gives it its own batch queue too.
 */
export const batchTaskQueue = (config: Pick<Config, 'TEMPORAL_TASK_QUEUE'>): string =>
  `${config.TEMPORAL_TASK_QUEUE}-batch`;

/** Fixed names: ids of schedules and workflows as they appear in the Temporal Web UI. */
export const names = {
  drainConsumer: 'redis-online-store',
  drainLease: 'drain',
  drainScheduleId: 'fresh-badges-drain',
  drainWorkflowIdPrefix: 'drain',
  compactionScheduleId: 'fresh-badges-compaction',
  landingConsumer: 'landing',
  landingScheduleId: 'fresh-badges-landing',
  exportScheduleId: 'fresh-badges-export',
  compactionWorkflowIdPrefix: 'compaction',
  verifyScheduleId: 'fresh-badges-verify',
  verifyWorkflowIdPrefix: 'verify-sampled',
  /** Per source: fresh-badges-capture-inventory, capture-inventory. */
  captureScheduleIdPrefix: 'fresh-badges-capture-',
  captureWorkflowIdPrefix: 'capture-',
} as const;
