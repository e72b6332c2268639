#!/usr/bin/env bash
# Origin offload of the edge cache under a Zipf workload: wrk (bench/load/zipf.lua) sends GET /k/<rank>, rank
# ~ Zipf(S) over N keys, through a caching proxy to ONE counting origin (nginx, 1 KiB for every /k/ path with
# Cache-Control: public, max-age=TTL; its stub_status `requests` delta = requests that reached the origin).
# Proxies, each started cold (empty cache) and measured alone: virex-edge (node.workers WORKERS, route
# cache.edge_ttl TTL, cache.edge.max_bytes 512MiB) and, as the reference, nginx proxy_cache (worker_processes
# WORKERS, proxy_cache_valid 200 TTL, keys_zone 64m, max_size 1g, defaults otherwise: no proxy_cache_lock).
# Two back-to-back wrk phases of SECS each per proxy: "cold" (starts with an empty cache, so every key's first
# request is a miss) and "steady" (the next SECS; with SECS = TTL every entry is re-fetched at most about once per
# phase). Per phase: client requests and rps (wrk), origin requests (stub_status delta), origin fraction =
# origin / client, offload = 1 - fraction. Also printed: the ideal steady-state fraction for the measured rate —
# TTL cache with one miss per key per (TTL + wait for the next request), Poisson arrivals, no capacity limit,
# perfect request coalescing: sum_i l_i / (1 + l_i TTL) / sum_i l_i with l_i = rps * P(rank i).
# Nothing is pinned (the proxy, the origin and wrk share the machine's cores); cpu is not measured here.
# Usage: bench/load/zipf_offload.sh [--secs N (60)] [--ttl N (60)] [--keys N (100000)] [--s X (1.0)]
#          [--conns N (64)] [--workers N (2)] [--delay-ms N (0: open throttle; >0 caps the offered load)]
#          [--bin PATH (build/release/src/virex-edge)] [--only "virex-edge nginx"] [--lock FILE [--lock-wait SECS]]
# Needs: nginx wrk curl python3 (scripts/deps.sh bench).
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SECS=60; TTL=60; KEYS=100000; ZS=1.0; CONNS=64; WORKERS=2; DELAY=0; BIN=$ROOT/build/release/src/virex-edge
ONLY="virex-edge nginx"; LOCK=""; LOCKWAIT=1800
while [ $# -gt 0 ]; do case "$1" in
  --secs) SECS=$2; shift 2;; --ttl) TTL=$2; shift 2;; --keys) KEYS=$2; shift 2;; --s) ZS=$2; shift 2;;
  --conns) CONNS=$2; shift 2;; --workers) WORKERS=$2; shift 2;; --delay-ms) DELAY=$2; shift 2;;
  --bin) BIN=$2; shift 2;; --only) ONLY=$2; shift 2;; --lock) LOCK=$2; shift 2;; --lock-wait) LOCKWAIT=$2; shift 2;;
  -h|--help) sed -n '2,19p' "$0"; exit 0;;
  *) echo "unknown arg $1" >&2; exit 2;; esac; done
for t in nginx wrk curl python3; do command -v $t >/dev/null || { echo "missing tool: $t (scripts/deps.sh bench)" >&2; exit 2; }; done
LUA=$ROOT/bench/load/zipf.lua
[ -r "$LUA" ] || { echo "missing $LUA" >&2; exit 2; }

W=$(mktemp -d /tmp/virex-zipf-offload.XXXX); chmod 755 "$W"
PIDS=""
. "$(dirname "$0")/lib.sh"   # tree_pids stop_tree cleanup (+ traps) free_port wait_http tree_cpu lock unlock
origin_requests() { curl -s -m 2 "http://127.0.0.1:$SP/status" | awk 'NR==3 {print $3}'; }

head -c 1024 /dev/zero | tr '\0' 'x' > "$W/body"; mkdir -p "$W/www"; cp "$W/body" "$W/www/body"
OP=$(free_port); SP=$(free_port)
cat > "$W/origin.conf" <<C
user root; worker_processes 1; daemon off; pid $W/origin.pid; error_log $W/origin.err;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000; keepalive_timeout 300s; open_file_cache max=100;
  default_type application/octet-stream;
  server { listen 127.0.0.1:$OP; root $W/www;
    location /k/ { add_header Cache-Control "public, max-age=$TTL"; try_files /body =404; } }
  server { listen 127.0.0.1:$SP; location = /status { stub_status; } } }
C
nginx -c "$W/origin.conf" -p "$W" > /dev/null 2>&1 &
PIDS="$PIDS $!"
wait_http "$OP" /k/1 || { echo "origin did not start:" >&2; cat "$W/origin.err" >&2; exit 1; }

ideal() { # rps -> ideal steady-state origin fraction (see the header)
  python3 - "$1" "$KEYS" "$ZS" "$TTL" <<'P'
import sys
rps, n, s, ttl = float(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
w = [i ** -s for i in range(1, n + 1)]; h = sum(w)
miss = sum((rps * x / h) / (1 + rps * x / h * ttl) for x in w)
print("%.4f" % (miss / rps if rps > 0 else 0))
P
}

run_proxy() { # name port pid -> two phase lines
  local name=$1 port=$2 pid=$3 phase r0 r1
  for phase in cold steady; do
    r0=$(origin_requests)
    ZIPF_N=$KEYS ZIPF_S=$ZS ZIPF_DELAY_MS=$DELAY ZIPF_SEED=$RANDOM \
      wrk -t1 -c"$CONNS" -d"${SECS}s" --latency -s "$LUA" "http://127.0.0.1:$port" > "$W/wrk.$phase" 2>&1
    r1=$(origin_requests)
    rps=$(awk '/Requests\/sec/ {print $2}' "$W/wrk.$phase")
    awk -v L="$name" -v P="$phase" -v o=$((r1 - r0 - 1)) -v ideal="$(ideal "${rps:-0}")" '
      /requests in/ {n=$1} /Requests\/sec/ {rps=$2} /^ +99%/ {p99=$2} /Non-2xx/ {bad=$NF} /Socket errors/ {err=$0}
      END {printf "%-10s %-6s client=%-9s rps=%-9.0f p99=%-8s origin=%-8s origin_fraction=%.4f offload=%.2f%% ideal_steady_fraction=%s %s %s\n",
                  L, P, n, rps, p99, o, (n ? o / n : 0), (n ? 100 * (1 - o / n) : 0), ideal, (bad ? "INVALID non2xx=" bad : ""), (err ? "INVALID " err : "")
           printf "%s %s %s %s %s %s\n", L, P, n, rps, o, ideal >> "'"$W/res"'"}' "$W/wrk.$phase"
  done
}

[ -n "$LOCK" ] && exec {LFD}>>"$LOCK"
echo "# $(date -u +%FT%TZ) commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo none) bin=$BIN" \
     "cpu=\"$(awk -F: '/model name/ {print $2; exit}' /proc/cpuinfo | sed 's/^ *//')\" cores=$(nproc)" \
     "keys=$KEYS zipf_s=$ZS ttl=${TTL}s phase_secs=$SECS conns=$CONNS workers=$WORKERS delay_ms=$DELAY; $(nginx -v 2>&1 | sed 's/.*: //')"
for s in $ONLY; do
  P=$(free_port)
  case $s in
  virex-edge)
    cat > "$W/edge.yaml" <<Y
node: {workers: $WORKERS}
limits: {idle_timeout: 300s}
listeners: [{name: bench, address: "127.0.0.1:$P"}]
upstreams:
  origin: {endpoints: ["127.0.0.1:$OP"], pool: {max_idle: 64}}
routes:
  - {name: zipf, match: {prefix: /k/}, upstream: origin, cache: {edge_ttl: ${TTL}s}}
cache: {edge: {max_bytes: 512MiB}}
observability: {log_level: warn}
Y
    if [ ! -x "$BIN" ]; then echo "# virex-edge: skipped, no binary at $BIN" >&2; continue; fi
    "$BIN" check-config "$W/edge.yaml" > "$W/check.out" 2>&1 || { echo "# virex-edge: skipped:" $(cat "$W/check.out") >&2; continue; }
    CMD=("$BIN" run --config "$W/edge.yaml");;
  nginx) mkdir -p "$W/nc"; cat > "$W/nginx.conf" <<C
user root; worker_processes $WORKERS; daemon off; pid $W/nginx.pid; error_log $W/nginx.err;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000; keepalive_timeout 300s;
  proxy_cache_path $W/nc levels=1:2 keys_zone=z:64m max_size=1g inactive=10m;
  upstream origin { server 127.0.0.1:$OP; keepalive 64; }
  server { listen 127.0.0.1:$P;
    location /k/ { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection "";
                   proxy_cache z; proxy_cache_valid 200 ${TTL}s; } } }
C
    CMD=(nginx -c "$W/nginx.conf" -p "$W");;
  *) echo "unknown proxy $s (virex-edge nginx)" >&2; exit 2;;
  esac
  lock
  "${CMD[@]}" > "$W/$s.log" 2>&1 &
  pid=$!; PIDS="$PIDS $pid"
  # readiness on a path outside the Zipf key space (/k/0), so that no measured key is warmed
  if wait_http "$P" /k/0; then run_proxy "$s" "$P" "$pid"
  else echo "# $s: skipped, did not answer GET /k/0:" $(tail -n 5 "$W/$s.log") >&2; fi
  stop_tree "$pid"
  unlock
done
[ -s "$W/res" ] && awk '
  { n[$1] += $3; o[$1] += $5; if ($2 == "steady") { sn[$1] = $3; so[$1] = $5; sr[$1] = $4; si[$1] = $6 } }
  END { print "\n| proxy | client requests (both phases) | origin requests | origin fraction | offload | steady phase: rps | origin fraction | ideal fraction at that rate |"
        print "|---|---|---|---|---|---|---|---|"
        for (k in n) printf "| %s | %d | %d | %.2f %% | %.2f %% | %.0f | %.2f %% | %.2f %% |\n", k, n[k], o[k], 100 * o[k] / n[k],
                             100 * (1 - o[k] / n[k]), sr[k], 100 * so[k] / sn[k], 100 * si[k] }' "$W/res"
