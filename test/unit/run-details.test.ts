import { describe, expect, it } from 'vitest';
import { count, duration, progress } from '../../workflows/run-details';
import { kindOfWorkflowType } from '../../workflows/search-attributes';

describe('run details figures (what the Web UI shows)', () => {
  it('rounds durations and gives them a unit', () => {
    expect(duration(62.967041015625)).toBe('63 ms');
    expect(duration(-5)).toBe('0 ms');
    expect(duration(4_210)).toBe('4.2 s');
    expect(duration(185_000)).toBe('3 min 5 s');
  });

  it('separates thousands', () => {
    expect(count(1_234_567.4)).toBe('1,234,567');
    expect(count(999)).toBe('999');
  });

  it('shows a share only of a total it has not passed', () => {
    expect(progress(12_000, 50_000, 'rows')).toBe('12,000 of 50,000 rows (24 %)');
    expect(progress(5_030, 0, 'rows')).toBe('5,030 rows');
    expect(progress(6_000, 5_030, 'rows')).toBe('6,000 rows');
  });
});

describe('search attributes', () => {
  it('every workflow the worker runs has a kind (FreshBadgesKind)', async () => {
    const workflows = await import('../../workflows');
    const types = Object.entries(workflows)
      .filter(([name, v]) => typeof v === 'function' && name.endsWith('Workflow'))
      .map(([name]) => name);
    expect(types.length).toBeGreaterThan(10);
    expect(types.filter((t) => !kindOfWorkflowType(t))).toEqual([]);
  });
});
