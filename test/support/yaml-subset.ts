/**
 * Reads the block-style YAML subset the shipped Prometheus rules file is written in: nested
 * mappings and sequences by indentation, plain and quoted scalars, and `>`/`|` block scalars. No
 * YAML library is installed (and none is fetched at test time); anything outside the subset throws,
 * so the rules file stays inside it. Whether the file is valid YAML at all is prettier's YAML
 * parser's call (the test and `npm run lint`); this only recovers its values.
 */
type Value = string | Value[] | { [key: string]: Value };

interface Line {
  indent: number;
  text: string;
  no: number;
}

export function parseYamlSubset(source: string): Value {
  const lines: Line[] = source
    .split('\n')
    .map((raw, i) => ({ indent: raw.length - raw.trimStart().length, text: raw.trim(), no: i + 1, raw }))
    .filter((l) => l.text !== '' && !l.text.startsWith('#'))
    .map(({ indent, text, no }) => ({ indent, text, no }));
  const at = { i: 0 };
  const value = block(lines, at, lines[0]?.indent ?? 0);
  if (at.i < lines.length) throw new Error(`line ${lines[at.i].no}: unexpected indentation`);
  return value;
}

/** A mapping or a sequence whose entries start at `indent`. */
function block(lines: Line[], at: { i: number }, indent: number): Value {
  if (lines[at.i]?.text.startsWith('- ')) return sequence(lines, at, indent);
  return mapping(lines, at, indent);
}

function sequence(lines: Line[], at: { i: number }, indent: number): Value[] {
  const items: Value[] = [];
  while (at.i < lines.length && lines[at.i].indent === indent && lines[at.i].text.startsWith('- ')) {
    const line = lines[at.i];
    // "- key: value": the item is a mapping whose first entry sits two columns further in
    lines[at.i] = { ...line, indent: indent + 2, text: line.text.slice(2).trimStart() };
    items.push(block(lines, at, indent + 2));
  }
  return items;
}

function mapping(lines: Line[], at: { i: number }, indent: number): Record<string, Value> {
  const out: Record<string, Value> = {};
  while (at.i < lines.length && lines[at.i].indent === indent && !lines[at.i].text.startsWith('- ')) {
    const line = lines[at.i];
    const m = /^([A-Za-z_][A-Za-z0-9_-]*):(?:\s+(.*))?$/.exec(line.text);
    if (!m) throw new Error(`line ${line.no}: not a "key: value" entry: ${line.text}`);
    if (m[1] in out) throw new Error(`line ${line.no}: duplicate key ${m[1]}`);
    at.i += 1;
    const rest = m[2] ?? '';
    if (rest === '') {
      const next = lines[at.i];
      if (!next || next.indent <= indent) throw new Error(`line ${line.no}: ${m[1]} has no value`);
      out[m[1]] = block(lines, at, next.indent);
    } else if (/^[>|][-+]?$/.test(rest)) out[m[1]] = blockScalar(lines, at, indent, rest);
    else out[m[1]] = scalar(rest, line.no);
  }
  return out;
}

/** `>-` folds its lines into one with spaces, `|` keeps them; both end without a newline here (`-`). */
function blockScalar(lines: Line[], at: { i: number }, indent: number, style: string): string {
  if (style !== '>-' && style !== '|-') throw new Error(`block scalar ${style}: only >- and |- are read`);
  const parts: string[] = [];
  while (at.i < lines.length && lines[at.i].indent > indent) parts.push(lines[at.i++].text);
  return parts.join(style === '>-' ? ' ' : '\n');
}

function scalar(text: string, no: number): string {
  if (text.startsWith("'")) {
    if (!/^'(?:[^']|'')*'$/.test(text)) throw new Error(`line ${no}: unterminated single-quoted string`);
    return text.slice(1, -1).replace(/''/g, "'");
  }
  if (text.startsWith('"')) return JSON.parse(text) as string;
  if (/^[[{&*!%@`]/.test(text) || / #/.test(text))
    throw new Error(`line ${no}: flow collections, anchors, tags and comments after a value are not read`);
  return text;
}
