/**
 * Secrets never reach a log, an error message or Temporal history: connection URLs are printed
 * with their password replaced, and configuration values that may hold secrets are never echoed.
 */

/** `postgres://user:secret@host/db` -> `postgres://user:***@host/db`; anything unparsable is hidden whole. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    for (const key of [...u.searchParams.keys()])
      if (/pass|secret|token|key/i.test(key)) u.searchParams.set(key, '***');
    return u.toString();
  } catch {
    return '(unparsable URL, not shown)';
  }
}

/** Replaces every URL with credentials inside free text (error messages from drivers). */
export function redactText(text: string): string {
  return text.replace(/\b([a-z][a-z0-9+.-]*:\/\/)([^:@/\s]*):([^@/\s]*)@/gi, '$1$2:***@');
}

/** Configuration keys whose values may carry credentials: never echoed, even when invalid. */
export const SECRET_KEYS: ReadonlySet<string> = new Set([
  'DATABASE_URL',
  'REPLICA_DATABASE_URL',
  'INVENTORY_DATABASE_URL',
  'ORDERS_DATABASE_URL',
  'INVENTORY_REPLICA_DATABASE_URL',
  'ORDERS_REPLICA_DATABASE_URL',
  'REDIS_URL',
  'REDIS_CLUSTER_NODES',
  'TEMPORAL_API_KEY',
]);
