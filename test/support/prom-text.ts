/**
 * The Prometheus text exposition format, read back into metric families: each family's type (from
 * its `# TYPE` line, which prom-client writes even before a labelled metric has a sample) and the
 * label names its samples carry.
 */
export interface MetricFamily {
  type: string;
  /** Label names seen on its samples (empty when it has none yet). */
  labels: Set<string>;
  samples: number;
}

const HISTOGRAM_SUFFIXES = ['_bucket', '_sum', '_count'];

/** The family a sample or a PromQL series name belongs to: `x_bucket` of histogram `x` is `x`. */
export function familyOf(name: string, families: Map<string, MetricFamily>): string | undefined {
  if (families.has(name)) return name;
  for (const suffix of HISTOGRAM_SUFFIXES) {
    const base = name.slice(0, -suffix.length);
    if (name.endsWith(suffix) && ['histogram', 'summary'].includes(families.get(base)?.type ?? '')) return base;
  }
  return undefined;
}

/** Adds the families of one endpoint's exposition to `into`. */
export function readExposition(text: string, into = new Map<string, MetricFamily>()): Map<string, MetricFamily> {
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)/.exec(line);
    if (type) {
      if (!into.has(type[1])) into.set(type[1], { type: type[2], labels: new Set(), samples: 0 });
      continue;
    }
    const sample = /^([A-Za-z_:][A-Za-z0-9_:]*)(\{[^}]*\})?\s/.exec(line);
    if (!sample) continue;
    const family = into.get(familyOf(sample[1], into) ?? '');
    if (!family) continue;
    family.samples += 1;
    for (const m of (sample[2] ?? '').matchAll(/([A-Za-z_][A-Za-z0-9_]*)="/g)) family.labels.add(m[1]);
  }
  return into;
}
