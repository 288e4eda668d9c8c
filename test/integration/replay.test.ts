/**
 * Workflow code must stay replay-compatible with histories of runs already in flight: a change
 * that would make a running drain fail with a non-determinism error on deploy fails here first.
 * Histories are recorded from real runs: `RECORD_HISTORIES=1 npx vitest run test/integration/drain-workflow.test.ts`
 * (re-record only on purpose, when a change is meant to be incompatible and is versioned with patched()).
 * `*-stop-then-continue-as-new.json`: runs of the older code that got `stop` and continued as new
 * anyway (the stop scenarios of test/workflows/drain-workflow.unit.test.ts, before
 * workflows/chain-stop.ts); they replay because of its patch. `landing-*.json`: landing runs
 * (`RECORD_HISTORIES=<name>` with test/integration/landing-retention.test.ts); `landing-before-prune`
 * ends after landing, as runs did before the landing pruned, and replays because of its patch.
 */
import fs from 'node:fs';
import path from 'node:path';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { Worker } from '@temporalio/worker';
import { describe, expect, it } from 'vitest';
import { sharedTestServer } from '../support/env';

const dir = path.join(__dirname, '..', 'histories');

describe('workflow replay', () => {
  it('replays every recorded history against the current workflow bundle', async () => {
    const files = fs.readdirSync(dir).filter((f) => f.endsWith('.json'));
    expect(files.length).toBeGreaterThan(0);
    const histories = files.map((f) => ({
      workflowId: f.replace(/\.json$/, ''),
      history: historyFromJSON(JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8'))),
    }));
    const results = [];
    for await (const r of Worker.runReplayHistories(
      { workflowBundle: { codePath: sharedTestServer().bundlePath } },
      histories,
    ))
      results.push(r);
    expect(results.map((r) => [r.workflowId, r.error?.message ?? null])).toEqual(
      histories.map((h) => [h.workflowId, null]),
    );
  });
});
