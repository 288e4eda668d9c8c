import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../config';
import { CONFIG_DEFAULTS } from '../../config/defaults';

describe('config defaults', () => {
  // Workflows fall back to CONFIG_DEFAULTS when an input leaves a setting out; an unset variable
  // must mean the same value there as in the configuration.
  it('are the configuration’s values when nothing is set', () => {
    expect(loadConfig({})).toMatchObject(CONFIG_DEFAULTS);
  });
});
