/** The store-apply settings every activity that writes the store takes from configuration. */
import type { Config } from '../config';

export const applyOptions = (config: Config) => ({
  chunk: config.APPLY_CHUNK,
  tombstoneTtlS: config.TOMBSTONE_TTL_S,
  loadTtlS: config.LOAD_TTL_S,
});
