/**
 * Registers the pipeline's search attributes (workflows/search-attributes.ts) in the namespace,
 * once, before any schedule or run uses them. The dev server gets them as start flags; a
 * self-hosted server through the operator API here. Where that API is not allowed (Temporal
 * Cloud with a namespace key), an operator creates them once (docs/operations.md) or sets
 * TEMPORAL_SEARCH_ATTRIBUTES=false.
 */
import type { Client } from '@temporalio/client';
import { SEARCH_ATTRIBUTE_KEYS } from '../../workflows/search-attributes';

/** Temporal's IndexedValueType numbers (temporal.api.enums.v1) of the types used here. */
const INDEXED_VALUE_TYPE: Record<string, number> = { KEYWORD: 2, INT: 3 };

/** The dev server's start flags: `--search-attribute FreshBadgesKind=Keyword …`. */
export function devServerSearchAttributeFlags(): string[] {
  const typeName = { KEYWORD: 'Keyword', INT: 'Int' } as Record<string, string>;
  return SEARCH_ATTRIBUTE_KEYS.flatMap((k) => ['--search-attribute', `${k.name}=${typeName[k.type]}`]);
}

/** Adds the ones the namespace lacks; returns their names. */
export async function ensureSearchAttributes(client: Client, namespace: string): Promise<string[]> {
  const operator = client.connection.operatorService;
  let known: Record<string, unknown>;
  try {
    known = (await operator.listSearchAttributes({ namespace })).customAttributes ?? {};
  } catch (err) {
    throw new Error(
      `cannot list the namespace's search attributes (${(err as Error).message}); create ${SEARCH_ATTRIBUTE_KEYS.map((k) => k.name).join(', ')} once (docs/operations.md, "Finding runs") or set TEMPORAL_SEARCH_ATTRIBUTES=false`,
      { cause: err },
    );
  }
  const missing = SEARCH_ATTRIBUTE_KEYS.filter((k) => !(k.name in known));
  if (!missing.length) return [];
  try {
    await operator.addSearchAttributes({
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
  return missing.map((k) => k.name);
}
