#!/usr/bin/env bash
# `npm test`: the three test runs, then one short list of every failure.
#   the default run (vitest.config.mts) and, beside it, the cluster run (vitest.cluster.config.mts)
#   followed by the logical run (vitest.logical.config.mts). Alone, the default run leaves the two
#   cores about 60 % idle and is the longest (about as long as the other two together): one after
#   the other the three took over 30 min on a slow day, `.ci/run`'s limit. The cluster and logical
#   runs each have a PostgreSQL server and a Redis db of their own (test/cluster-setup.ts,
#   test/logical-setup.ts); they share the Redis server with the default run (tests that watch it
#   through MONITOR keep to their own db: test/support/store-monitor.ts). The logical run runs even when the
#   cluster run failed, so one `npm test` reports every failure; the second group's output is
#   printed once the default run's has ended (concurrently --group).
# Each run's failures are written by test/support/failure-summary-reporter.ts and printed last:
# a CI log is often read from its tail, and vitest's own list is then thousands of lines up.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ "$#" -gt 0 ]; then
  echo "npm test takes no arguments (it runs all three runs); for some files of one run:" >&2
  echo "  npm run test:single -- <files>   (or test:cluster, test:logical)" >&2
  exit 2
fi
if [ -n "${TEST_REDIS_URL:-}" ]; then
  echo "npm test runs its runs side by side, each on a Redis db of its own (15, 14, 13 of 127.0.0.1:6379);" >&2
  echo "TEST_REDIS_URL would put them all on one, where each empties the others' store. Unset it, or" >&2
  echo "run one run with it: npm run test:single (or test:cluster, test:logical)" >&2
  exit 2
fi
export TEST_FAILURE_SUMMARY_DIR
TEST_FAILURE_SUMMARY_DIR=$(mktemp -d)
trap 'rm -rf "$TEST_FAILURE_SUMMARY_DIR"' EXIT

status=0
npx concurrently --group --names default,cluster+logical "npm:test:single" \
  'npm run -s test:cluster; c=$?; npm run -s test:logical && exit "$c"' || status=1

echo
echo "==> npm test: $([ "$status" = 0 ] && echo passed || echo FAILED)"
for run in default cluster logical; do
  f="$TEST_FAILURE_SUMMARY_DIR/$run.txt"
  if [ -f "$f" ]; then cat "$f"; else echo "$run run: ended without a summary (it crashed or was stopped; see its output)"; fi
done
exit "$status"
