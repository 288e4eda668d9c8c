/**
 * Shell examples in the docs that a test runs exactly as written: fenced `sh` blocks whose first
 * line is `# <marker>: <name>`.
 */
export interface DocExample {
  name: string;
  script: string;
}

export function docExamples(markdown: string, marker: string): DocExample[] {
  const out: DocExample[] = [];
  for (const m of markdown.matchAll(/^```sh\n([\s\S]*?)^```$/gm)) {
    const first = new RegExp(`^# ${marker}: (\\S+)\\n`).exec(m[1]);
    if (first) out.push({ name: first[1], script: m[1] });
  }
  return out;
}
