/**
 * Just enough PromQL reading to know which metrics and labels an expression refers to (the
 * shipped dashboard and alert rules are checked against the real /metrics: no promtool here). Not
 * a parser: string literals and range durations are blanked, then identifiers are sorted into
 * functions (followed by "("), label names (inside a selector's braces or a by/without/on/ignoring
 * list) and metric names (everything else that is not a keyword).
 */

/** Keywords and modifiers that look like identifiers but are not metrics. */
const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'by', 'without', 'on', 'ignoring']);
const GROUPING = /\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g;
const IDENT = /[A-Za-z_:][A-Za-z0-9_:]*/y;
const NUMBER = /(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?/y;

export interface PromqlRefs {
  /** Metric names as written (a histogram's `_bucket`/`_sum`/`_count` series included). */
  metrics: { name: string; labels: string[] }[];
  /** Label names of by/without/on/ignoring lists. */
  groupingLabels: string[];
}

/** Blanks what is not an identifier of interest: string literals, range and subquery durations, Grafana's `$__…` variables. */
function blankLiterals(expr: string): string {
  return expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\$\{?__\w+\}?/g, ' ');
}

/** The label names of a selector's matchers (`{route=~"a|b",status!="200"}`). */
function matcherLabels(braces: string): string[] {
  return [...braces.matchAll(/([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)/g)].map((m) => m[1]);
}

export function promqlRefs(expr: string): PromqlRefs {
  const groupingLabels: string[] = [];
  const text = blankLiterals(expr).replace(GROUPING, (_, _kw: string, list: string) => {
    groupingLabels.push(
      ...list
        .split(',')
        .map((l) => l.trim())
        .filter(Boolean),
    );
    return ' ';
  });
  const metrics: PromqlRefs['metrics'] = [];
  let i = 0;
  while (i < text.length) {
    NUMBER.lastIndex = i;
    IDENT.lastIndex = i;
    const num = /[0-9.]/.test(text[i]) ? NUMBER.exec(text) : null;
    if (num) {
      i += num[0].length;
      continue;
    }
    const id = IDENT.exec(text);
    if (!id) {
      // a selector without a metric name ({__name__=…}) is not used in the shipped files
      if (text[i] === '{') i = text.indexOf('}', i) + 1;
      else i += 1;
      continue;
    }
    i += id[0].length;
    const rest = text.slice(i).trimStart();
    if (rest.startsWith('(') || KEYWORDS.has(id[0])) continue; // a function, an aggregation or a keyword
    let labels: string[] = [];
    if (rest.startsWith('{')) {
      const open = text.indexOf('{', i);
      const close = text.indexOf('}', open);
      labels = matcherLabels(text.slice(open + 1, close));
      i = close + 1;
    }
    metrics.push({ name: id[0], labels });
  }
  return { metrics, groupingLabels };
}
