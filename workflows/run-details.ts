/**
 * Figures for a person, as runs show them in the Web UI's current details: rounded, with units,
 * thousands separated. Workflow-safe (no Intl, no Node APIs).
 */

/** 1234567 → "1,234,567" (rounded to a whole number). */
export function count(n: number): string {
  return String(Math.round(n)).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** 62.967 → "63 ms", 4210 → "4.2 s", 185000 → "3 min 5 s". */
export function duration(ms: number): string {
  const v = Math.max(0, ms);
  if (v < 1_000) return `${Math.round(v)} ms`;
  if (v < 60_000) return `${Math.round(v / 100) / 10} s`;
  const s = Math.round(v / 1_000);
  return `${Math.floor(s / 60)} min ${s % 60} s`;
}

/** "12,000 of 50,000 rows (24 %)"; with an unknown or exceeded total, the rows alone. */
export function progress(done: number, total: number | null, unit: string): string {
  if (!total || total < done) return `${count(done)} ${unit}`;
  return `${count(done)} of ${count(total)} ${unit} (${Math.floor((done * 100) / total)} %)`;
}
