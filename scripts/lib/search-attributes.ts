/**
 * Registers the pipeline's search attributes (workflows/search-attributes.ts) in the namespace,
 * once, before any schedule or run uses them. The dev server gets them as start flags; a
 * self-hosted server through the operator API here. Where that API is not allowed (Temporal
 * Cloud with a namespace key), an operator creates them once (docs/operations.md) or sets
 * TEMPORAL_SEARCH_ATTRIBUTES=false.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Client } from '@temporalio/client';
import { SEARCH_ATTRIBUTE_KEYS } from '../../workflows/search-attributes';

/** Temporal's IndexedValueType numbers (temporal.api.enums.v1) of the types used here. */
const INDEXED_VALUE_TYPE: Record<string, number> = { KEYWORD: 2, INT: 3 };

/** The dev server's start flags: `--search-attribute FreshBadgesKind=Keyword …`. */
export function devServerSearchAttributeFlags(): string[] {
  const typeName = { KEYWORD: 'Keyword', INT: 'Int' } as Record<string, string>;
  return SEARCH_ATTRIBUTE_KEYS.flatMap((k) => ['--search-attribute', `${k.name}=${typeName[k.type]}`]);
}

/**
 * Adds the ones the namespace lacks and waits until the namespace knows them; returns their names.
 * A client that may not list them (a restricted namespace) is told once and goes on: they are then
 * expected to exist (created by an operator); a run started without them fails with the server's
 * message naming the attribute.
 */
export async function ensureSearchAttributes(
  client: Client,
  namespace: string,
  warn: (message: string) => void = (m) => process.emitWarning(m),
): Promise<string[]> {
  const known = await knownAttributes(client, namespace).catch((err: Error) => {
    warn(
      `cannot list the namespace's search attributes (${err.message}); going on as if ${names()} exist (create them once: docs/operations.md, "Finding runs"; or TEMPORAL_SEARCH_ATTRIBUTES=false)`,
    );
    return null;
  });
  if (known === null) return [];
  const missing = SEARCH_ATTRIBUTE_KEYS.filter((k) => !known.has(k.name));
  if (!missing.length) return [];
  try {
    await client.connection.operatorService.addSearchAttributes({
      namespace,
      searchAttributes: Object.fromEntries(missing.map((k) => [k.name, INDEXED_VALUE_TYPE[k.type]])),
    });
  } catch (err) {
    if (!/already exists/i.test((err as Error).message))
      throw new Error(
        `cannot register the search attributes ${missing.map((k) => k.name).join(', ')} (${(err as Error).message}): create them once with \`temporal operator search-attribute create\` (docs/operations.md, "Finding runs") or set TEMPORAL_SEARCH_ATTRIBUTES=false`,
        { cause: err },
      );
  }
  // A self-hosted server's namespace cache learns them a moment later: a run started before
  // would be refused.
  const deadline = Date.now() + 30_000;
  while (SEARCH_ATTRIBUTE_KEYS.some((k) => !known.has(k.name))) {
    if (Date.now() > deadline)
      throw new Error(`the search attributes ${names()} were added but the namespace does not list them after 30 s`);
    await sleep(250);
    for (const name of await knownAttributes(client, namespace)) known.add(name);
  }
  return missing.map((k) => k.name);
}

const names = () => SEARCH_ATTRIBUTE_KEYS.map((k) => k.name).join(', ');

async function knownAttributes(client: Client, namespace: string): Promise<Set<string>> {
  const r = await client.connection.operatorService.listSearchAttributes({ namespace });
  return new Set(Object.keys(r.customAttributes ?? {}));
}
