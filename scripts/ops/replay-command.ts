/**
 * `ops replay --from POSITION | --since TIME`: re-apply retained changes after a fix of feature
 * logic. What each form means is in activities/replay/replay-start.ts; `ops status` prints the
 * drain's applied snapshot in the form --from takes.
 */
import { type Command, InvalidArgumentError } from 'commander';
import { formatPosition } from '../../activities/replay/replay-range';
import { parseReplayFrom, parseSince, positionSince, type ReplayStart } from '../../activities/replay/replay-start';
import { replayWorkflow, type ReplayProgress } from '../../workflows';
import type { Position } from '../../outbox';
import { OpsContext, OpsError, stamp } from './context';
import { runOperatorWorkflow } from './operator-workflow';

/** A commander argument parser: the parse error becomes a usage error (exit 2). */
const usage =
  <T>(parse: (v: string) => T) =>
  (v: string): T => {
    try {
      return parse(v);
    } catch (err) {
      throw new InvalidArgumentError((err as Error).message);
    }
  };

export function registerReplay(program: Command, ctx: () => OpsContext): void {
  program
    .command('replay')
    .description(
      're-apply every retained change from a position up to what the drain has applied (after a fix of feature logic); give --from or --since',
    )
    .option(
      '--from <position>',
      'the snapshot `ops status` prints ("applied through snapshot XMIN:XMAX:XIP"): every change it did not see; or TXID:ID (after that outbox row); or "start"',
      usage(parseReplayFrom),
    )
    .option(
      '--since <time>',
      'from the first retained change written at or after an ISO time (UTC unless it names a zone) or a duration back from now: 30m, 1h, 2d, 1h30m',
      usage((v: string) => parseSince(v)),
    )
    .option('--no-wait', 'start it and return')
    .action(async (o: { from?: ReplayStart; since?: Date; wait: boolean }) => {
      if (!o.from === !o.since) throw new OpsError('replay takes either --from POSITION or --since TIME', 2);
      const start = o.from ?? (await startSince(ctx(), o.since!));
      if (!start) return;
      const { position } = start;
      const r = await runOperatorWorkflow<typeof replayWorkflow, ReplayProgress>(ctx(), {
        what: 'replay',
        workflow: replayWorkflow,
        workflowId: `replay-${position.txid}-${position.id}-${stamp()}`,
        args: [{ from: position }],
        summary: `Replay of retained changes from ${start.described} (after outbox position ${formatPosition(position)})`,
        wait: o.wait,
        progress: (p) => ({ value: p.rows, total: p.totalRows, label: 'replay' }),
      });
      if (r)
        console.log(
          `replayed ${r.rows} changes${movedStart(position, r.from)} up to ${formatPosition(r.position)}; ${r.applied} store values re-written`,
        );
    });
}

/** The replay starts where compaction had not cut yet (outbox/holds.ts): said when that is later than asked. */
const movedStart = (asked: Position, from: Position) =>
  formatPosition(asked) === formatPosition(from)
    ? ''
    : ` from ${formatPosition(from)} (compaction had released the changes before it when the replay started)`;

/** --since: the outbox position to start from, or null (said why) when nothing was written since. */
async function startSince(c: OpsContext, since: Date): Promise<ReplayStart | null> {
  const { position, oldestRetained } = await positionSince(c.pool(), since);
  const at = since.toISOString();
  if (!position) {
    console.log(`no retained change was written at or after ${at}: nothing to replay`);
    return null;
  }
  if (oldestRetained && oldestRetained > since)
    console.log(
      `note: the oldest retained change was written at ${oldestRetained.toISOString()}; any change before it was compacted away and is not replayed`,
    );
  return { position, described: `the first change written at or after ${at}` };
}
