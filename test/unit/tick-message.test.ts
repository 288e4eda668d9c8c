/**
 * A tick's message (capture/ticks.ts) carries the source's snapshot as the tick was written, so the
 * capture's horizon (capture/watermark-windows.ts) moves as the tick arrives in the stream, whoever
 * wrote it and however late its writer heard back (with a synchronous standby, after the stream).
 */
import { describe, expect, it } from 'vitest';
import { decodePipelineMessage } from '../../capture/ticks';

const decode = (v: unknown) => decodePipelineMessage(Buffer.from(JSON.stringify(v)));

describe('tick messages', () => {
  it('carry the snapshot they were written with', () => {
    expect(decode({ tick: 1764900000123.5, snap: '100:105:101,103' })).toEqual({
      kind: 'tick',
      at: 1764900000123.5,
      snapshot: '100:105:101,103',
    });
  });

  it('read ticks written before the snapshot was added, and ignore what is not a tick', () => {
    expect(decode({ tick: 5 })).toEqual({ kind: 'tick', at: 5 });
    expect(decode({ tick: 'soon' })).toBeNull();
    expect(decodePipelineMessage(Buffer.from('not json'))).toBeNull();
  });
});
