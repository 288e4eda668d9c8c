/**
 * The feature definitions: which entities exist, which features each has, and how a source row
 * becomes feature values. Online materialization (the drain), the reconciliation check and the
 * offline export all use these, so "what a feature means" is written exactly once.
 *
 * Entities and features (Feast vocabulary):
 *   sku            lifecycle                 from shop.skus
 *   sku x fc       available = on_hand - reserved   from shop.inventory
 *   fc             daily_capacity            from shop.fulfillment_centers
 *   fc x day       load = sum(qty) of placed|shipped orders placed that UTC day   from shop.orders
 *   region x fc    rank (1 = nearest)        from shop.region_fc
 */

export type Lifecycle = 'active' | 'paused' | 'discontinued';
export const LIFECYCLES: readonly Lifecycle[] = ['active', 'paused', 'discontinued'];

/**
 * Ids (SKU, FC, region) as the contract gives them: letters, digits and . _ : -, 1 to 128
 * characters. The store relies on it: FC ids are the fields of SKU and region hashes beside names
 * no id can take (store/names.ts FIELD); a source row with another id is a malformed change.
 */
export const ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;

/** Order statuses that count towards an FC's load for the day the order was placed. */
export const LOAD_STATUSES: ReadonlySet<string> = new Set(['placed', 'shipped']);

/** A null rank sorts after every real rank (SQL: order by rank nulls last). */
export const RANK_NULL = 2_147_483_648;

/**
 * The UTC day of a timestamp as yyyymmdd: FC load is counted per UTC day. The year has at least
 * four digits, as PostgreSQL's to_char(…, 'YYYYMMDD') writes it (year 44 is "0044").
 */
export function utcDay(at: Date): string {
  const y = at.getUTCFullYear();
  const m = at.getUTCMonth() + 1;
  const d = at.getUTCDate();
  return `${y < 1000 ? String(y).padStart(4, '0') : y}${m < 10 ? '0' : ''}${m}${d < 10 ? '0' : ''}${d}`;
}

/**
 * Whether yyyymmdd day `a` comes before day `b`. Not a string comparison: a year of five digits
 * ("100000101") sorts before "99991231" as text.
 */
export function dayBefore(a: string, b: string): boolean {
  return a.length !== b.length ? a.length < b.length : a < b;
}

/**
 * The days of FC load the online store keeps: a counter lives until the end of its UTC day plus
 * LOAD_TTL_S (store/apply.ts sets that expiry), so at `nowMs` it holds every day from this one on.
 * The backfill recomputes exactly these days and verify compares exactly these.
 */
export function loadWindowStart(nowMs: number, loadTtlS: number): string {
  return utcDay(new Date(nowMs - loadTtlS * 1000));
}

/** The first instant of a yyyymmdd UTC day, as an ISO string (for SQL). */
export function dayStartIso(day: string): string {
  const at = new Date(0);
  at.setUTCFullYear(Number(day.slice(0, -4)), Number(day.slice(-4, -2)) - 1, Number(day.slice(-2)));
  return at.toISOString();
}

/**
 * SQL: placed_at is on a day the rule counts (placedDay below is not null): finite, AD in UTC and
 * within JavaScript's dates.
 */
export const PLACED_ON_A_DAY_SQL = `isfinite(placed_at) and placed_at >= '0001-01-01 00:00+00' and placed_at < '275760-09-13 00:00+00'`;

/**
 * SQL, $1 the first instant of the load window: each FC's load of each UTC day from then on (the
 * rule's sum over placed and shipped orders, as text), for every FC and day the window's orders
 * name whatever their status, and, up to today, for every FC any of them names on every day any
 * of them names: 0 where no order counts. A refill of the loads sets those too (activities/
 * backfill): after the store was emptied, the delta of an order cancelled, deleted or moved since
 * may still wait to be applied, and a set puts it behind it. A counter no row names (a deleted
 * order whose FC or day no other order names) is 0 by the refill's completeness (op Z in
 * store/lua/apply.lua; docs/correctness.md, "The days of load"). One scan of the orders; the cross product is of the FCs and days the
 * groups name.
 */
export const WINDOW_LOADS_SQL = `with g as (
    select fc_id, to_char(placed_at at time zone 'UTC', 'YYYYMMDD') as day,
           coalesce(sum(qty) filter (where status in ('placed', 'shipped') and qty is not null), 0) as load
      from shop.orders
     where fc_id is not null and ${PLACED_ON_A_DAY_SQL} and placed_at >= $1::timestamptz
     group by 1, 2)
  select fc_id, day, load::text as load from g
  union all
  select f.fc_id, d.day, '0'
    from (select distinct fc_id from g) f
   cross join (select distinct day from g
                where day <= to_char(statement_timestamp() at time zone 'UTC', 'YYYYMMDD')) d
   where not exists (select 1 from g where g.fc_id = f.fc_id and g.day = d.day)`;

/**
 * A timestamptz as PostgreSQL writes it: to_jsonb's 2026-12-03T16:00:00.123456+00:00 (the text
 * output has a space for the T and +00), a year of four digits or more, at most six digits of
 * fraction, an offset to the second (its hours up to 167: a POSIX TimeZone setting such as
 * '<+25>-25' writes +25:00), ' BC'. Also Z and ISO 8601's +hhmm (toISOString, rows written by
 * hand). Not a time without an offset: that is no instant (JavaScript would take the host's zone).
 */
const PG_TIMESTAMPTZ =
  /^(\d{4,})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?(Z|[+-](?:\d\d|1\d\d)(?::\d\d(?::\d\d)?)?|[+-]\d{4}(?:\d\d)?)( BC)?$/;

/** Thrown for a value that is not a timestamp at all (a malformed change). */
export class NotATimestamp extends Error {
  override name = 'NotATimestamp';
}

/**
 * The UTC day (yyyymmdd) an order placed at `placedAt` counts on, or null when it counts on no
 * day: `infinity`, `-infinity`, an instant before AD 1 in UTC, or one on or after the last day a
 * JavaScript Date reaches (275760-09-13 UTC). All of those are valid timestamptz values; the badge rule counts an order on the UTC
 * day of placed_at, and these are on no day the rule can ever ask about, so they add to no load.
 * A value PostgreSQL cannot write, 30 February or 25:00 say, is NotATimestamp: a Date would roll it
 * over into another day and count the order there.
 */
export function placedDay(placedAt: string): string | null {
  if (placedAt === 'infinity' || placedAt === '-infinity') return null;
  // The common case, to_jsonb's with a four-digit year AD, without captures (this runs for every
  // order change): its fields read from their characters, its instant by V8's ISO parser.
  if (COMMON_TIMESTAMPTZ.test(placedAt)) {
    const y = digits(placedAt, 0, 4);
    const why = impossibleField(y, y, digits(placedAt, 5, 7), digits(placedAt, 8, 10), digits(placedAt, 11, 13), 0, 0);
    if (why) throw impossible(placedAt, why);
    const ms = Date.parse(placedAt);
    // (a year 0001 with an offset east of UTC can still be before AD 1 there)
    if (!Number.isNaN(ms)) return ms < AD_1_MS ? null : utcDay(new Date(ms));
  }
  const m = PG_TIMESTAMPTZ.exec(placedAt);
  if (!m) throw impossible(placedAt, 'not yyyy-mm-ddThh:mm:ss[.ffffff]+hh:mm[:ss][ BC]');
  const [, y, mo, d, h, mi, s, frac, zone, bc] = m;
  // 1 BC is year 0 (a local time late on 31 December 1 BC can be 1 January AD 1 in UTC)
  const year = bc ? 1 - Number(y) : Number(y);
  const offset = offsetMs(zone!);
  const why =
    impossibleField(Number(y), year, Number(mo), Number(d), Number(h), Number(mi), Number(s)) ??
    (offset === null ? `offset ${zone}` : null);
  if (why) throw impossible(placedAt, why);
  // In plain arithmetic, not a Date: a local time past JavaScript's last day can still be within
  // it in UTC (an offset of +167:00), and a Date holding the local time would be NaN.
  const localMs =
    daysFromCivil(year, Number(mo), Number(d)) * 86_400_000 +
    ((Number(h) * 60 + Number(mi)) * 60 + Number(s)) * 1000 +
    (frac ? Number(frac.slice(0, 3).padEnd(3, '0')) : 0);
  const ms = localMs - offset!;
  // before AD 1 in UTC (the rule's days are AD), or on or past JavaScript's last day: on no day.
  // That day, 13 September 275760, is on none either: a Date holds only its first millisecond, and
  // SQL (PLACED_ON_A_DAY_SQL) ends the days before it, so the verify, the refill and the export agree.
  return ms < AD_1_MS || ms >= LAST_DAY_MS ? null : utcDay(new Date(ms));
}

/**
 * Days from 1970-01-01 to year-month-day of the proleptic Gregorian calendar (year 0 is 1 BC), in
 * integer arithmetic (H. Hinnant's days_from_civil), for any year a timestamptz can hold.
 */
function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yearOfEra = y - era * 400;
  const dayOfYear = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1;
  const dayOfEra = yearOfEra * 365 + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100) + dayOfYear;
  return era * 146_097 + dayOfEra - 719_468;
}

/** The first instant of 275760-09-13 UTC, the last day a JavaScript Date reaches (its last millisecond, 8.64e15). */
const LAST_DAY_MS = 8.64e15;

/** The first instant of AD 1 in UTC: the rule's days are AD. */
const AD_1_MS = Date.parse('0001-01-01T00:00:00Z');

/** PG_TIMESTAMPTZ's most frequent shape: a four-digit year, an offset within a day in hours and minutes, or Z. */
const COMMON_TIMESTAMPTZ = /^\d{4}-\d\d-\d\dT\d\d:[0-5]\d:[0-5]\d(?:\.\d{1,6})?(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)$/;

/** The number the decimal digits s[from, to) write. */
function digits(s: string, from: number, to: number): number {
  let n = 0;
  for (let i = from; i < to; i++) n = n * 10 + s.charCodeAt(i) - 48;
  return n;
}

function impossible(placedAt: string, why: string): NotATimestamp {
  return new NotATimestamp(`not a timestamp PostgreSQL writes: ${JSON.stringify(placedAt.slice(0, 60))} (${why})`);
}

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/**
 * Which field of a written date and time no timestamp has, or null. PostgreSQL's calendar is the
 * proleptic Gregorian one with 1 BC as year 0 (`year`; `written` is the year as written), a leap
 * year; given 24:00:00 or a leap second 23:59:60 it writes the next day or minute, never either.
 */
function impossibleField(
  written: number,
  year: number,
  month: number,
  day: number,
  hour: number,
  minute: number,
  second: number,
): string | null {
  if (written === 0) return 'year 0: 1 BC is followed by AD 1';
  if (month < 1 || month > 12) return `month ${month}`;
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  const days = month === 2 && leap ? 29 : DAYS_IN_MONTH[month - 1]!;
  if (day < 1 || day > days) return `day ${day} of a month of ${days} days`;
  if (hour > 23) return `hour ${hour}`;
  if (minute > 59) return `minute ${minute}`;
  if (second > 59) return `second ${second}`;
  return null;
}

/** The offset `zone` (Z, ±hh[:mm[:ss]], ±hhmm[ss]) adds to UTC, in ms; null when a field is out of range. */
function offsetMs(zone: string): number | null {
  if (zone === 'Z') return 0;
  const body = zone.slice(1);
  const [h, m = '0', s = '0'] = body.includes(':') || body.length <= 3 ? body.split(':') : body.match(/\d\d/g)!;
  if (Number(h) > 167 || Number(m) > 59 || Number(s) > 59) return null;
  const ms = ((Number(h) * 60 + Number(m)) * 60 + Number(s)) * 1000;
  return zone[0] === '+' ? ms : -ms;
}

/**
 * One change to one feature value, with the version that orders it.
 *  - Row-derived features carry `version`: the outbox id of the change. For one source row, ids
 *    follow the true order of its changes, so "higher id wins" is last-writer-wins per row.
 *    `value: null` means the source row is gone (kept as a versioned tombstone in the store so
 *    an older, late change cannot bring it back). `txid` (the writing transaction) decides
 *    against values a backfill wrote from a snapshot: newer iff that snapshot did not see it.
 *  - The load is a sum over many rows, so it changes by deltas. A delta is applied at most once
 *    per counter because the counter remembers the stream position (txid, id) of the last
 *    delta it took, and the drain always applies in that order.
 */
export type FeatureUpdate =
  | {
      feature: 'sku.lifecycle';
      sku: string;
      value: Lifecycle | null;
      version: number;
      txid: string;
      /** An update of an existing SKU: if the store no longer knows the SKU, its stock must be rebuilt. */
      update?: boolean;
      /** The SKU's insert: its stock arrives after it, as changes of their own (store/apply.ts, foldOps). */
      insert?: boolean;
      /** A refresh (R: the row re-read from the source), not the source's own change. */
      refresh?: boolean;
    }
  | { feature: 'sku.available'; sku: string; fc: string; value: number | null; version: number; txid: string }
  | { feature: 'fc.capacity'; fc: string; value: number | null; version: number; txid: string }
  | { feature: 'region.rank'; region: string; fc: string; value: number | null; version: number; txid: string }
  | { feature: 'fc.load'; fc: string; day: string; delta: number; txid: string; id: number }
  /**
   * The whole load of an FC's day as of this change's place in the stream: a sum re-read from the
   * source between watermarks (capture/watermark-read.ts). Deltas after it add to it. The last
   * set of a refill carries `completeFrom` (yyyymmdd): the refill names every FC and day from then
   * on that is not 0, so every counter the store holds from that day on and the refill does not
   * name is 0 as of here (capture/chunk-rows.ts, op Z in store/lua/apply.lua).
   */
  | {
      feature: 'fc.loadSet';
      fc: string;
      day: string;
      value: number;
      txid: string;
      id: number;
      completeFrom?: string;
    }
  /**
   * A refill of the loads that found no order from `from` (yyyymmdd) on: every counter the store
   * holds from that day on is 0 as of here (the completeness a last set carries, with no set to
   * carry it).
   */
  | { feature: 'fc.loadsComplete'; from: string; txid: string; id: number };

/** The features of the load counters: sums, not versioned values (a replay leaves them alone: activities/replay). */
export const LOAD_FEATURES: ReadonlySet<FeatureUpdate['feature']> = new Set([
  'fc.load',
  'fc.loadSet',
  'fc.loadsComplete',
]);
