/**
 * A SKU re-read's retry resumes the chunks its failed attempt handed to the capture, found in that
 * attempt's heartbeat details (activities/lifecycle): details of any other shape (an older worker's,
 * or none) mean reading again, never waiting on something that is not a chunk.
 */
import { describe, expect, it } from 'vitest';
import { handedChunksOf } from '../../activities/lifecycle';

describe('handedChunksOf', () => {
  it('takes the chunks of a failed attempt', () => {
    const handed = [
      { id: '12', highLsn: '0/4CD3338' },
      { id: '13', highLsn: '1A/FF' },
    ];
    expect(handedChunksOf({ handed })).toEqual(handed);
    expect(handedChunksOf({ handed: [{ id: '7', highLsn: '0/1', extra: true }] })).toEqual([
      { id: '7', highLsn: '0/1' },
    ]);
  });

  it.each([
    undefined,
    null,
    'x',
    {},
    { handed: undefined },
    { handed: 'x' },
    { handed: [null] },
    { handed: [{ id: 12, highLsn: '0/1' }] },
    { handed: [{ id: '1 or 1=1', highLsn: '0/1' }] },
    { handed: [{ id: '12', highLsn: '0/1; drop' }] },
    { handed: [{ id: '12' }] },
    { handed: [{ id: '12', highLsn: '0/1' }, { id: '' }] },
  ])('reads nothing from %j', (details) => {
    expect(handedChunksOf(details)).toBeUndefined();
  });
});
