#!/usr/bin/env bash
# The shard router against PostgreSQL itself: `pgbench -S` (select-only, prepared) straight at one PostgreSQL 15
# and, in the same run, an HTTP GET query route of virex-edge (`SELECT abalance FROM pgbench_accounts WHERE aid =
# $1`, aid from the path, random per request like pgbench's) in front of the same server, with the same client
# count. Reports requests (transactions) per second and the PostgreSQL connections each used (pg_stat_activity,
# sampled halfway through the run). virex-edge on core 0, wrk and pgbench on core 1, postgres unpinned.
# The server: tests/integration/pgcluster.py (one shard, no replica), pgbench -i -s SCALE.
# Usage: bench/load/shard_vs_pgbench.sh [--secs N (10)] [--clients N (32)] [--workers N (1)] [--pool N (4)]
#          [--scale N (1)] [--rounds N (2)] [--bin PATH (build/release/src/virex-edge)] [--lock FILE [--lock-wait SECS]]
# Needs: wrk curl taskset python3 /usr/bin/python3 (psycopg2) and PostgreSQL 15 (scripts/deps.sh build test bench).
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SECS=10; CLIENTS=32; WORKERS=1; POOL=4; SCALE=1; ROUNDS=2
BIN=$ROOT/build/release/src/virex-edge; LOCK=""; LOCKWAIT=1800
while [ $# -gt 0 ]; do case "$1" in
  --secs) SECS=$2; shift 2;; --clients) CLIENTS=$2; shift 2;; --workers) WORKERS=$2; shift 2;;
  --pool) POOL=$2; shift 2;; --scale) SCALE=$2; shift 2;; --rounds) ROUNDS=$2; shift 2;; --bin) BIN=$2; shift 2;;
  --lock) LOCK=$2; shift 2;; --lock-wait) LOCKWAIT=$2; shift 2;;
  -h|--help) sed -n '2,10p' "$0"; exit 0;;
  *) echo "unknown arg $1" >&2; exit 2;; esac; done
PGBIN=/usr/lib/postgresql/15/bin
for t in wrk curl taskset python3 $PGBIN/pgbench; do command -v $t >/dev/null || { echo "missing tool: $t" >&2; exit 2; }; done
[ -x "$BIN" ] || { echo "no binary at $BIN (cmake --build --preset release)" >&2; exit 2; }

W=$(mktemp -d /tmp/virex-shard-bench.XXXX); chmod 755 "$W"
PIDS=""
. "$(dirname "$0")/lib.sh"   # tree_pids stop_tree cleanup (+ traps) free_port wait_http tree_cpu lock unlock
[ -n "$LOCK" ] && { exec {LFD}>>"$LOCK"; }

# --- PostgreSQL: one shard, no replica; the cluster helper prints its description as one JSON line.
/usr/bin/python3 "$ROOT/tests/integration/pgcluster.py" run --shards 1 --replica -1 --per-shard 100000000 \
  --customers 1 > "$W/pg.json" 2> "$W/pg.err" &
PGPID=$!; PIDS="$PGPID"
for _ in $(seq 600); do [ -s "$W/pg.json" ] && break; kill -0 $PGPID 2>/dev/null || break; sleep 0.1; done
[ -s "$W/pg.json" ] || { echo "PostgreSQL did not start:" >&2; cat "$W/pg.err" >&2; exit 1; }
DSN=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["primaries"][0])' "$W/pg.json")
PORT=$(echo "$DSN" | sed 's/.*port=\([0-9]*\).*/\1/')
PSQL="psql -X -q -h 127.0.0.1 -p $PORT -U postgres -d app"
$PGBIN/pgbench -i -q -s "$SCALE" -h 127.0.0.1 -p "$PORT" -U postgres app > "$W/init.log" 2>&1 || { cat "$W/init.log"; exit 1; }
ROWS=$((SCALE * 100000))

# --- virex-edge: one query route, the pool of $POOL connections per node.
VP=$(free_port); AP=$(free_port)
cat > "$W/edge.yaml" <<YAML
node: {name: bench, workers: $WORKERS}
listeners:
  - {name: public, address: "127.0.0.1:$VP"}
  - {name: admin, address: "127.0.0.1:$AP", admin: true}
routes:
  - name: account
    match: {path: "/a/{aid}", method: GET}
    query: {sql: "SELECT abalance FROM pgbench_accounts WHERE aid = \$1", params: ["aid:int64"], shard_by: aid}
databases:
  pool: {max_per_endpoint: $POOL, acquire_timeout: 2s, statement_timeout: 5s, max_pipeline: 64}
  shards:
    - {id: 0, customers: [1, $ROWS], primary: "$DSN"}
YAML
cat > "$W/rand.lua" <<LUA
math.randomseed(os.time())
request = function() return wrk.format("GET", "/a/" .. math.random(1, $ROWS)) end
LUA
taskset -c 0 "$BIN" run --config "$W/edge.yaml" > "$W/edge.log" 2>&1 &
EP=$!; PIDS="$EP $PIDS"
wait_http "$VP" /a/1 || { echo "virex-edge did not answer:" >&2; cat "$W/edge.log" >&2; exit 1; }

conns_midrun() { # application_name filter -> connections open halfway through the run
  sleep $((SECS / 2))
  $PSQL -At -c "SELECT count(*) FROM pg_stat_activity WHERE application_name = '$1'" > "$W/conns.$1"
}

echo "# $(date -u +%FT%TZ) commit $(git -C "$ROOT" rev-parse --short HEAD) clients=$CLIENTS secs=$SECS workers=$WORKERS pool=$POOL scale=$SCALE"
# CPU of the postgres server (postmaster, its live backends and the ones it reaped), of virex-edge and of the
# load generator, in clock ticks; per request in the table.
PM=$(head -1 "$($PSQL -At -c 'SHOW data_directory')/postmaster.pid")
HZ=$(getconf CLK_TCK)
pg_cpu() { local t; t=$(tree_cpu "$PM"); awk -v t="$t" '{print t + $16 + $17}' /proc/$PM/stat; }
us_per() { awk -v a="$1" -v b="$2" -v n="$3" -v hz="$HZ" 'BEGIN {if (n > 0) printf "%.1f", (b - a) * 1e6 / hz / n; else print "-"}'; }
printf "%-12s %6s %12s %10s %10s %8s %8s %8s\n" client round "req/s" "pg_conns" "errors" "pg_us" "edge_us" "gen_us"
lock
for r in $(seq "$ROUNDS"); do
  conns_midrun pgbench & SP=$!
  p0=$(pg_cpu); e0=$(tree_cpu "$EP")
  out=$(/usr/bin/time -f "GENCPU %U %S" taskset -c 1 $PGBIN/pgbench -S -M prepared -n -c "$CLIENTS" -j 1 -T "$SECS" -h 127.0.0.1 -p "$PORT" -U postgres app 2>&1)
  wait $SP
  sleep 0.5; p1=$(pg_cpu)   # (pgbench's backends have exited and been reaped: their CPU is in cutime)
  tps=$(echo "$out" | awk '/^tps = / {print $3; exit}')
  fails=$(echo "$out" | awk '/number of failed transactions/ {print $5}')
  n=$(echo "$out" | awk '/number of transactions actually processed/ {print $NF}' | cut -d/ -f1)
  g=$(echo "$out" | awk -v hz="$HZ" '/^GENCPU/ {print ($2 + $3) * hz}')
  printf "%-12s %6s %12s %10s %10s %8s %8s %8s\n" pgbench-S "$r" "$tps" "$(cat "$W/conns.pgbench")" "${fails:-0}" \
    "$(us_per "$p0" "$p1" "$n")" - "$(us_per 0 "$g" "$n")"
  conns_midrun virex-edge & SP=$!
  p0=$(pg_cpu); e0=$(tree_cpu "$EP")
  out=$(/usr/bin/time -f "GENCPU %U %S" taskset -c 1 wrk -t1 -c"$CLIENTS" -d"${SECS}s" -s "$W/rand.lua" "http://127.0.0.1:$VP/" 2>&1)
  wait $SP
  p1=$(pg_cpu); e1=$(tree_cpu "$EP")
  rps=$(echo "$out" | awk '/^Requests\/sec:/ {print $2}')
  errs=$(echo "$out" | awk '/Non-2xx/ {print $NF} /Socket errors/ {print $0}' | tr '\n' ' ')
  n=$(echo "$out" | awk '/requests in/ {print $1}')
  g=$(echo "$out" | awk -v hz="$HZ" '/^GENCPU/ {print ($2 + $3) * hz}')
  printf "%-12s %6s %12s %10s %10s %8s %8s %8s\n" virex-edge "$r" "$rps" "$(cat "$W/conns.virex-edge")" "${errs:-0}" \
    "$(us_per "$p0" "$p1" "$n")" "$(us_per "$e0" "$e1" "$n")" "$(us_per 0 "$g" "$n")"
done
unlock
curl -s "http://127.0.0.1:$AP/metrics" | grep -E "^virex_shard_pipeline_depth_(count|sum)|^virex_shard_queries_total|^virex_shard_syncs_total" | head -6
