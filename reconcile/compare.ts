/** Differences between two feature snapshots (source vs store), per feature and key. */
import type { FeatureSnapshot } from './source-features';

export interface Mismatch {
  feature: keyof FeatureSnapshot | 'badge';
  key: string;
  source: string | number | undefined;
  store: string | number | undefined;
}

export function compareSnapshots(source: FeatureSnapshot, store: FeatureSnapshot, limit = 1000): Mismatch[] {
  const out: Mismatch[] = [];
  for (const feature of Object.keys(source) as (keyof FeatureSnapshot)[]) {
    const a = source[feature] as Map<string, string | number>;
    const b = store[feature] as Map<string, string | number>;
    for (const key of new Set([...a.keys(), ...b.keys()])) {
      if (a.get(key) !== b.get(key)) {
        out.push({ feature, key, source: a.get(key), store: b.get(key) });
        if (out.length >= limit) return out;
      }
    }
  }
  return out;
}
