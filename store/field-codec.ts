/**
 * How one versioned feature value is written in a hash field: "value|version".
 * value is an integer, a lifecycle code (a/p/d, or D: discontinued in a key that expired and was
 * written again, so its stock is gone: store/lua/apply.lua), or "x" for a tombstone (the source
 * row is gone; the version fences off older changes that arrive late).
 */
import type { Lifecycle } from '../features/definitions';

export const TOMBSTONE = 'x';

const LIFECYCLE_CODE: Record<Lifecycle, string> = { active: 'a', paused: 'p', discontinued: 'd' };
const CODE_LIFECYCLE: Record<string, Lifecycle> = { a: 'active', p: 'paused', d: 'discontinued', D: 'discontinued' };

export function lifecycleCode(value: Lifecycle | null): string {
  return value === null ? TOMBSTONE : LIFECYCLE_CODE[value];
}

export function intCode(value: number | null): string {
  return value === null ? TOMBSTONE : String(value);
}

/** The value part of a stored field, or null when absent or a tombstone. */
export function storedValue(raw: string | null | undefined): string | null {
  if (raw === null || raw === undefined) return null;
  const bar = raw.indexOf('|');
  const value = bar < 0 ? raw : raw.slice(0, bar);
  return value === TOMBSTONE ? null : value;
}

export function storedInt(raw: string | null | undefined): number | null {
  const v = storedValue(raw);
  return v === null ? null : Number(v);
}

export function storedLifecycle(raw: string | null | undefined): Lifecycle | null {
  const v = storedValue(raw);
  return v === null ? null : (CODE_LIFECYCLE[v] ?? null);
}

export function storedVersion(raw: string | null | undefined): number | null {
  if (!raw) return null;
  const bar = raw.indexOf('|');
  return bar < 0 ? null : Number(raw.slice(bar + 1));
}
