/** Small helpers shared by the benchmark scripts: percentiles and a markdown table. */
export function percentiles(samplesMs: number[]): { p50: number; p99: number; p999: number; max: number } {
  const s = Float64Array.from(samplesMs).sort();
  const at = (q: number) => (s.length ? s[Math.min(s.length - 1, Math.floor(q * s.length))] : NaN);
  return { p50: at(0.5), p99: at(0.99), p999: at(0.999), max: s.length ? s[s.length - 1] : NaN };
}

export function table(headers: string[], rows: (string | number)[][]): string {
  const cells = rows.map((r) => r.map(String));
  const line = (r: string[]) => `| ${r.join(' | ')} |`;
  return [line(headers), line(headers.map(() => '---')), ...cells.map(line)].join('\n');
}

export const ms = (v: number) => (Number.isFinite(v) ? v.toFixed(v < 1 ? 3 : v < 10 ? 2 : 1) : '-');
export const int = (v: number) => Math.round(v).toLocaleString('en-US');
