/**
 * Runs the badge read script (store/lua/read-badges.lua) on one partition per call, every call of
 * one node in one pipeline, all nodes at once. It runs as EVALSHA_RO (EVAL_RO when the server does
 * not have it cached yet), so a Redis ACL user that may only read serves the API
 * (docs/operations.md, Redis users); a server older than Redis 7 (no _RO variants) gets EVALSHA.
 */
import type { PartitionKeys } from '../store/keys';
import { pipelineByNode, StoreRedis } from '../store/redis-client';
import { defineScripts, runScript, SCRIPTS } from '../store/scripts';

/**
 * The script's reply: region hash, [capacity, load] per FC, [caughtUpAt, partitions, caughtUpClock,
 * the server's TIME in ms], then per SKU its fields.
 */
export type ReadReply = [
  string[],
  string[],
  [string | null, string | null, string | null, number],
  ...(string | null)[][],
];

export interface ReadCall {
  partition: PartitionKeys;
  /** ARGV: prefix, day, region, SKUs… */
  args: string[];
}

const READ = SCRIPTS.readBadges;
type Mode = 'evalsha_ro' | 'eval_ro' | 'evalsha';

export class ReadScript {
  /** False once the server turned out older than Redis 7. */
  private readOnlyScripts = true;

  constructor(private readonly redis: StoreRedis) {
    defineScripts(redis);
  }

  async run(calls: ReadCall[]): Promise<ReadReply[]> {
    const out: ReadReply[] = new Array(calls.length);
    let todo = calls.map((_, i) => i);
    for (let attempt = 0; todo.length > 0; attempt++) {
      const mode: Mode = !this.readOnlyScripts ? 'evalsha' : attempt === 0 ? 'evalsha_ro' : 'eval_ro';
      todo = await this.attempt(
        mode,
        todo.map((i) => ({ index: i, call: calls[i] })),
        out,
      );
      if (attempt > 2 && todo.length) throw new Error('badge read script could not be run');
    }
    return out;
  }

  /** One pipelined round of calls in `mode`; returns the indexes to try again (in another mode). */
  private async attempt(mode: Mode, batch: { index: number; call: ReadCall }[], out: ReadReply[]): Promise<number[]> {
    const replies = await pipelineByNode(
      this.redis,
      batch,
      (b) => b.call.partition.meta,
      (pipeline, { call }) => {
        // KEYS[1] (the partition's meta) routes the call to the partition's node on a cluster
        const meta = call.partition.meta;
        if (mode === 'evalsha_ro') void pipeline.evalsha_ro(READ.sha, 1, meta, ...call.args);
        else if (mode === 'eval_ro') void pipeline.eval_ro(READ.lua, 1, meta, ...call.args);
        else void runScript(pipeline, READ, 1, meta, ...call.args);
      },
    );
    const again: number[] = [];
    for (const [n, [err, reply]] of replies.entries()) {
      if (!err) {
        out[batch[n].index] = reply as ReadReply;
        continue;
      }
      const message = err.message ?? '';
      if (mode === 'evalsha_ro' && message.startsWith('NOSCRIPT')) again.push(batch[n].index);
      else if (mode !== 'evalsha' && /unknown command/i.test(message)) {
        this.readOnlyScripts = false; // a server older than Redis 7
        again.push(batch[n].index);
      } else throw err;
    }
    return again;
  }
}
