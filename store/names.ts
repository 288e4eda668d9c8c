/**
 * The names the online store is written with, in one place: key suffixes (after a partition's
 * prefix: store/keys.ts), hash fields, and the codes of the apply script's operations. TypeScript
 * imports them; the Lua scripts get them as the tables KEY, FIELD and OP, which the script loader
 * (store/scripts.ts) puts at the top of every script. Changing a value changes the stored layout:
 * bump STORE_LAYOUT (store/keys.ts) with it.
 */

/** Bumped when the layout changes: a store of another layout is rebuilt (store/layout.ts). */
export const STORE_LAYOUT = 2;

/** Key suffixes after a partition's prefix (store/keys.ts shows the whole layout). */
export const KEY = {
  sku: 's:',
  fc: 'f:',
  load: 'l:',
  region: 'r:',
  meta: 'meta',
  /** Present while the partition is complete. */
  epoch: `epoch:${STORE_LAYOUT}`,
  snaps: 'snaps',
  pos: 'pos',
  fence: 'fence',
  rebuilds: 'rebuilds',
  /** What waiting dead letters hold back from fresh answers (store/held.ts). */
  held: 'held',
  backfill: 'backfill',
  /** The last step of that backfill the partition holds the writes of (store/lua/backfill-step.lua). */
  backfillStep: 'backfill-step',
  /** A dead-letter retry's marker: each load delta of a dead letter is retried once. */
  deadLetterRetry: 'dlr:',
  /** Sorted set of the partition's load counter keys, scored by their expiry (unix seconds). */
  loadIndex: 'loads',
  /**
   * Hash: the position (and snapshot, or place in the stream) as of which the last refill of the
   * loads found every counter it did not name to be 0, and its first day (FIELD.loadFrom).
   */
  loadBase: 'loadbase',
} as const;

/**
 * Fields of a partition's held hash (store/held.ts): what a waiting dead letter holds back from
 * fresh answers. The same prefixes as the keys of what they hold (a load holds its FC).
 */
export const HELD = {
  sku: 's:',
  fc: 'f:',
  region: 'r:',
  /** A TRUNCATE, or a change whose subject cannot be told: the whole partition. */
  all: 'all',
} as const;

/** Hash fields. */
export const FIELD = {
  /** SKU hash: the lifecycle (a name no id can take; FC ids are the stock fields). */
  lifecycle: '#',
  /** FC hash: daily capacity (region hashes use FC ids as fields). */
  capacity: 'c',
  /** Load counter: the count, and the delivery position and backfill snapshot it was last written at. */
  loadCount: 'n',
  loadBatch: 'b',
  loadTxid: 't',
  loadId: 'i',
  loadSnapshot: 'sk',
  /**
   * The outbox position ("txid:id") of the load set that set the counter, when it was re-read from
   * a source captured from the WAL (its place in the stream says what it saw; it has no snapshot).
   */
  loadSetAt: 'st',
  /** Load base ({pp}loadbase): the first day (yyyymmdd) the refill's loads are complete from. */
  loadFrom: 'd',
  /** Partition position ({pp}pos): the last row applied. */
  appliedBatch: 'lb',
  appliedTxid: 'lt',
  appliedId: 'li',
  /**
   * Partition position: what the drain chunk that wrote it delivered (store/chunk-print.ts: the
   * position before it, its rows, the sums of their outbox ids and write times), checked against
   * the outbox when the store is found one chunk ahead of the cursor (activities/drain/adopted-chunk.ts).
   */
  appliedChunk: 'lk',
  /** Partition position: the batch claimed last (its start and target snapshots, the target's time). */
  claimedBatch: 'cb',
  claimedFrom: 'cf',
  claimedTarget: 'ct',
  claimedAt: 'cat',
  /**
   * Partition position: a rebuild of the partition began and has not ended (store/rebuild.ts). Its
   * first write and removed by its last, so a Redis back from a file written in between shows it,
   * and the drain rebuilds the partition again instead of taking what the rebuild left for data.
   */
  rebuilding: 'rb',
  /**
   * Partition position: the batch (its number) whose TRUNCATE empties the store once its last chunk
   * is applied (activities/drain/truncates.ts). Written before any chunk of it moves the position and
   * removed by the emptying's reset, so a Redis back from a file written in between shows it once
   * the cursor has gone past that batch, and the drain rebuilds the partition.
   */
  truncatePending: 'tp',
  /**
   * Partition position: the batch (its number) in progress when the partition was emptied (a
   * rebuild, or an emptied store's first position check). That batch's later chunks may hold an
   * older image of a row whose delete an earlier chunk delivered (the drain reads in transaction-id
   * order), and the delete's tombstone went with the emptying: the apply refuses that batch's
   * writes into absent fields the deletion fence saw (store/lua/apply.lua). The refill, whose
   * snapshot covers the fence, brings those rows as they are.
   */
  fencedBatch: 'fb',
  // ('tb', 'tt': TRUNCATEs met in earlier chunks, which older versions remembered here; a store
  // may still hold them, unread: the drain now asks PostgreSQL, activities/drain/truncates.ts.)
  /** Meta hash: the freshness watermark (store/watermark.ts) and the partition count it speaks for. */
  sourceMs: 'sourceMs',
  appliedAt: 'appliedAt',
  caughtUpAt: 'caughtUpAt',
  /** caughtUpAt on this Redis server's clock (TIME), the one reads measure the lag with. */
  caughtUpClock: 'caughtUpClock',
  partitions: 'parts',
  /** Meta hash: where the tombstone sweep goes on. */
  sweepCursor: 'sweepCursor',
  sweepPattern: 'sweepPattern',
  sweepNode: 'sweepNode',
} as const;

/** The apply script's operation codes (store/store-ops.ts encodes them, store/lua/apply.lua runs them). */
export const OP = {
  versioned: 'S',
  stock: 'A',
  lifecycle: 'Y',
  lifecycleUpdate: 'U',
  lifecycleRefresh: 'V',
  loadDelta: 'L',
  loadDeltas: 'M',
  fill: 'B',
  loadSet: 'C',
  loadRetry: 'R',
  loadsComplete: 'Z',
} as const;
