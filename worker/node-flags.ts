/**
 * Node flags of the pipeline worker process (capture and drain in one event loop). `npm start` and
 * `npm run worker` (package.json) pass the same; a unit test keeps them in step, and the benchmarks
 * start the worker with them (scripts/bench/processes.ts).
 *
 * --max-semi-space-size=64 (MiB; the default lets the young generation grow to 16): capture and
 * the drain allocate short-lived rows, images and buffers at up to 100,000 changes/s, and a batch
 * lives for a few tens of milliseconds. With a small young generation a batch survives two
 * scavenges and is copied into the old generation, whose collection then costs the most. Measured
 * by `npm run bench:e2e-logical` (catch-up of 1,000,000 changes, three runs each, alternating):
 * worker CPU per change 13.3 / 14.5 / 13.4 µs without, 12.3 / 13.7 / 12.0 µs with
 * (docs/benchmarks.md). Costs up to 3 × 64 MiB of memory.
 */
export const PIPELINE_WORKER_NODE_FLAGS = ['--max-semi-space-size=64'];
