#!/usr/bin/env bash
# The cost of tracing on the hot path (issue 8): server CPU µs per request of a 1 KiB in-memory response
# (a `respond` route: the closest thing to a cache hit until the edge cache lands) with tracing off, with OTLP
# export at sample_ratio 0.01, and at 1.0 — three daemons in one run, alternated ROUNDS times. Method of
# compare.sh: each daemon has one worker pinned to core 0; wrk (-t1 -cCONNS) and the OTLP receiver
# (tests/tools/otlp_receiver, its JSON output discarded) share core 1. cpu_us/req = user+sys ticks of the
# daemon (its exporter thread included) over the wrk run / requests completed.
# With --hit the route is an edge-cache hit instead: each daemon proxies /hit to one origin (a fourth
# virex-edge on core 1 answering `Cache-Control: public, max-age=3600`) with `cache: {edge_ttl: 1h}`, filled by
# one GET before the runs and checked to answer `Cache-Status: virex-edge; hit` before and after them.
# Usage: bench/load/tracing_overhead.sh [--hit] [--secs N (10)] [--conns N (64)] [--rounds N (3)] [--bin PATH]
#          [--receiver PATH (build/release/tests/tools/otlp_receiver)]
# Needs: wrk curl taskset; a release build of virex-edge and otlp_receiver.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SECS=10; CONNS=64; ROUNDS=3; HIT=0; BIN=$ROOT/build/release/src/virex-edge; RX=$ROOT/build/release/tests/tools/otlp_receiver
while [ $# -gt 0 ]; do case "$1" in
  --secs) SECS=$2; shift 2;; --conns) CONNS=$2; shift 2;; --rounds) ROUNDS=$2; shift 2;;
  --bin) BIN=$2; shift 2;; --receiver) RX=$2; shift 2;; --hit) HIT=1; shift;;
  -h|--help) sed -n '2,13p' "$0"; exit 0;;
  *) echo "unknown arg $1" >&2; exit 2;; esac; done
for t in wrk curl taskset; do command -v $t >/dev/null || { echo "missing tool: $t" >&2; exit 2; }; done
[ -x "$BIN" ] || { echo "not an executable: $BIN" >&2; exit 2; }
[ -x "$RX" ] || { echo "not an executable: $RX" >&2; exit 2; }

W=$(mktemp -d /tmp/virex-trace.XXXX)
PIDS=""
. "$(dirname "$0")/lib.sh"   # tree_pids stop_tree cleanup (+ traps) free_port wait_http tree_cpu

# The receiver: its first line is "PORT n"; the span lines go to /dev/null.
taskset -c 1 "$RX" > "$W/rx.out" 2> "$W/rx.err" &
RXPID=$!; PIDS="$PIDS $RXPID"
for _ in $(seq 100); do grep -q '^PORT ' "$W/rx.out" 2>/dev/null && break; sleep 0.1; done
RXPORT=$(awk '/^PORT /{print $2; exit}' "$W/rx.out")
[ -n "$RXPORT" ] || { echo "otlp_receiver did not start" >&2; cat "$W/rx.err" >&2; exit 1; }

BODY=$(head -c 1024 /dev/zero | tr '\0' 'x')
ROUTE="{name: hit, match: {path: /hit}, respond: {headers: {Content-Type: application/octet-stream}, body: \"$BODY\"}}"
EXTRA=""
if [ "$HIT" = 1 ]; then
  OPORT=$(free_port)
  cat > "$W/origin.yaml" <<Y
node: {name: origin, workers: 1}
listeners: [{name: public, address: "127.0.0.1:$OPORT"}]
routes:
  - {name: hit, match: {path: /hit}, respond: {headers: {Content-Type: application/octet-stream, Cache-Control: "public, max-age=3600"}, body: "$BODY"}}
observability: {log_level: warn}
Y
  taskset -c 1 "$BIN" run --config "$W/origin.yaml" > "$W/origin.log" 2>&1 &
  PIDS="$PIDS $!"
  wait_http "$OPORT" /hit || { cat "$W/origin.log" >&2; exit 1; }
  ROUTE="{name: hit, match: {path: /hit}, upstream: origin, cache: {edge_ttl: 1h}}"
  EXTRA="upstreams: {origin: {endpoints: [\"127.0.0.1:$OPORT\"]}}
cache: {edge: {max_bytes: 64MiB}}"
fi
check_hit() { # port
  [ "$HIT" = 1 ] || return 0
  curl -s -D - -o /dev/null "http://127.0.0.1:$1/hit" | grep -qi '^Cache-Status: virex-edge; hit' ||
    { echo "port $1: /hit is not an edge-cache hit" >&2; exit 1; }
}
start_edge() { # label tracing-yaml -> sets PORT_<label>, PID_<label>
  local port; port=$(free_port)
  cat > "$W/$1.yaml" <<Y
node: {name: bench, region: local, workers: 1}
limits: {idle_timeout: 300s}
listeners: [{name: public, address: "127.0.0.1:$port"}]
routes:
  - $ROUTE
$EXTRA
observability: {log_level: warn$2}
Y
  taskset -c 0 "$BIN" run --config "$W/$1.yaml" > "$W/$1.log" 2>&1 &
  local pid=$!; PIDS="$PIDS $pid"
  wait_http "$port" /hit || { cat "$W/$1.log" >&2; exit 1; }
  check_hit "$port"
  eval "PORT_$1=$port; PID_$1=$pid"
}
start_edge off ""
start_edge r001 ", tracing: {otlp_endpoint: \"127.0.0.1:$RXPORT\", sample_ratio: 0.01}"
start_edge r100 ", tracing: {otlp_endpoint: \"127.0.0.1:$RXPORT\", sample_ratio: 1.0}"

run() { # label
  local port pid c0 c1
  eval "port=\$PORT_$1; pid=\$PID_$1"
  c0=$(tree_cpu "$pid")
  taskset -c 1 wrk -t1 -c"$CONNS" -d"${SECS}s" --latency "http://127.0.0.1:$port/hit" > "$W/wrk.$1" 2>&1
  c1=$(tree_cpu "$pid")
  awk -v L="$1" -v ticks=$((c1-c0)) -v hz="$(getconf CLK_TCK)" -v cpuf="$W/cpu" '
    /requests in/ {n=$1} /Requests\/sec/ {rps=$2} /^ +99%/ {p99=$2}
    END {cpu=(n? ticks*1e6/hz/n : 0); printf "%-5s rps=%-10s p99=%-8s cpu_us/req=%.2f\n", L, rps, p99, cpu
         printf "%s %.4f\n", L, cpu >> cpuf}' "$W/wrk.$1"
}
echo "# $(date -u +%FT%TZ) commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null) secs=$SECS conns=$CONNS rounds=$ROUNDS route=$([ "$HIT" = 1 ] && echo edge-cache-hit || echo respond)"
for l in off r001 r100; do eval "taskset -c 1 wrk -t1 -c$CONNS -d1s http://127.0.0.1:\$PORT_$l/hit" > /dev/null 2>&1; done
for r in $(seq "$ROUNDS"); do for l in off r001 r100; do run $l; done; done
for l in off r001 r100; do eval "check_hit \$PORT_$l"; done
awk '{v[$1] = v[$1] " " $2}
     function median(s,   a, n, i, j, t) { n = split(s, a, " ");
       for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
       return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
     END { o = median(v["off"]); a = median(v["r001"]); b = median(v["r100"]);
           printf "median cpu_us/req: off %.2f, 1%% %.2f (%+.1f%%), 100%% %.2f (%+.1f%%)\n", o, a, (a/o-1)*100, b, (b/o-1)*100 }' "$W/cpu"
