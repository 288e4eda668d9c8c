/**
 * A capture of one source in a process of its own, for the crash tests: CAPTURE_SOURCE (JSON of a
 * CaptureSource) into the pipeline database at DATABASE_URL, until FRESH_BADGES_FAULT kills it or
 * 20 s pass.
 */
import { runCapture } from '../../capture/capture-loop';
import type { CaptureSource } from '../../capture/sources';
import { createPool } from '../../db/pool';

async function main(): Promise<void> {
  const source = JSON.parse(process.env.CAPTURE_SOURCE ?? '') as CaptureSource;
  const pipeline = createPool(process.env.DATABASE_URL!);
  try {
    await runCapture({ source, pipeline, tickMs: 50, budgetMs: 20_000 });
  } finally {
    await pipeline.end();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
