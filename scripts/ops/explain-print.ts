/** `ops explain` for a person: the answer, the rule that decided, the FCs side by side, freshness. */
import type { ExplainedFc } from '../../features/badge-explain';
import { RANK_NULL } from '../../features/definitions';
import type { Badge } from '../../features/badge-rule';
import type { Explanation } from './explain';

const COLUMNS = ['rank', 'fc', 'available', 'capacity', 'load today', 'verdict'];

/** "3" when store and source agree, "3 / 4" (store / source) when they differ; "-" when one side lacks it. */
function cell(o: ExplainedFc | undefined, s: ExplainedFc | undefined, k: 'rank' | 'available' | 'capacity' | 'load') {
  const show = (f: ExplainedFc | undefined) => {
    if (!f) return '-';
    const v = f[k];
    if (v === null) return 'unknown';
    return k === 'rank' && v === RANK_NULL ? 'none' : String(v);
  };
  const a = show(o);
  const b = show(s);
  return a === b ? a : `${a} / ${b}`;
}

function verdict(o: ExplainedFc | undefined, s: ExplainedFc | undefined): string {
  const a = o?.verdict ?? '-';
  const b = s?.verdict ?? '-';
  return a === b ? a : `${a} / ${b}`;
}

/** The region's FCs in the store's rule order (then any only the source has): one row each. */
function fcRows(e: Explanation): string[][] {
  const sourceFcs = new Map(e.source.fcs.map((f) => [f.fc, f]));
  const onlineFcs = new Map(e.online.fcs.map((f) => [f.fc, f]));
  const order = [...e.online.fcs.map((f) => f.fc), ...e.source.fcs.map((f) => f.fc).filter((fc) => !onlineFcs.has(fc))];
  return order.map((fc) => {
    const o = onlineFcs.get(fc);
    const s = sourceFcs.get(fc);
    return [cell(o, s, 'rank'), fc, cell(o, s, 'available'), cell(o, s, 'capacity'), cell(o, s, 'load'), verdict(o, s)];
  });
}

function table(rows: string[][]): string[] {
  const widths = COLUMNS.map((c, i) => Math.max(c.length, ...rows.map((r) => r[i].length)));
  const fmt = (r: string[]) => `    ${r.map((v, i) => v.padEnd(widths[i])).join('  ')}`.trimEnd();
  return [fmt(COLUMNS), ...rows.map(fmt)];
}

function freshnessLine(e: Explanation): string {
  const a = e.answer;
  if (a.asOf === null)
    return 'STALE: the pipeline has not confirmed this partition (never caught up, or the store is being rebuilt)';
  const lag = `as of ${a.asOf} (${Math.round((a.lagMs ?? 0) / 100) / 10} s ago)`;
  return a.stale ? `STALE, ${lag}: reads say stale: true` : `fresh, ${lag}`;
}

/** "ELIGIBLE from FC-001" or "NOT ELIGIBLE: out_of_stock". */
const headline = (b: Badge) => (b.eligible ? `ELIGIBLE from ${b.fc}` : `NOT ELIGIBLE: ${b.reason}`);

export function printExplanation(e: Explanation): void {
  const out: string[] = [];
  out.push(`${e.sku} in ${e.region}: ${headline(e.answer)} (the online answer${e.answer.stale ? ', stale' : ''})`);
  out.push(`  why (store): ${e.online.rule}`);
  out.push(e.agree ? '  source (SQL): the same badge' : `  source (SQL) DIFFERS: ${e.source.rule}`);
  out.push(
    `  lifecycle: ${e.online.lifecycle ?? 'none'} in the store, ${e.source.lifecycle ?? 'no row'} in the source`,
  );
  out.push(
    `  FCs of ${e.region} in the order the rule tries them (load: UTC day ${e.day}; "store / source" where they differ):`,
  );
  out.push(...(e.online.fcs.length || e.source.fcs.length ? table(fcRows(e)) : ['    (none: the region has no FC)']));
  out.push(`  freshness: ${freshnessLine(e)}`);
  out.push(`  SKU key: ${e.online.ttl.text}`);
  if (e.differences.length) out.push('  store and source differ:', ...e.differences.map((d) => `    ${d}`));
  console.log(out.join('\n'));
}
