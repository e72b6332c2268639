#!/usr/bin/env bash
# The cost of a REGIONAL HIT (Redis) next to an EDGE HIT and an ORIGIN FETCH, in one virex-edge process, in one run.
# Placement: virex-edge, one worker pinned to core 0; redis-server (no persistence), the origin (nginx, one worker,
# 1 KiB body, Cache-Control: public, max-age=60) and wrk (-t1 -cCONNS --latency) share core 1.
# Routes of the one daemon: /edge/ (cache: {edge_ttl: 60s}: every request an edge hit), /reg/ (scope: private with
# identity {header: X-User}, regional_ttl 10m: never in the edge cache, so every request is an edge miss answered by
# a Redis GET — the cost includes the SHA-256 of the identity), /origin/ (no cache: proxied to nginx each time).
# Each scenario's hit is checked before and after its run (Cache-Status), and the origin's stub_status count must
# not grow during the edge and regional runs (else INVALID). Per scenario and round: rps, p50, p99, cpu_us/req of
# the virex-edge process alone (clock ticks over the run / requests), redis-server's cpu_us/req (for information),
# and for the regional run the commands per Redis write (virex_regional_pipeline_depth sum/count delta) and the
# Redis command latency. Then medians and the ratio regional / edge (target: cpu ≤ 2×).
# Usage: bench/load/regional_compare.sh [--secs N (10)] [--conns N (64)] [--rounds N (3)]
#          [--bin PATH (build/release/src/virex-edge)] [--lock FILE [--lock-wait SECS (1800)]]
# Needs: nginx redis-server wrk curl taskset.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SECS=10; CONNS=64; ROUNDS=3; BIN=$ROOT/build/release/src/virex-edge; LOCK=""; LOCKWAIT=1800
while [ $# -gt 0 ]; do case "$1" in
  --secs) SECS=$2; shift 2;; --conns) CONNS=$2; shift 2;; --rounds) ROUNDS=$2; shift 2;; --bin) BIN=$2; shift 2;;
  --lock) LOCK=$2; shift 2;; --lock-wait) LOCKWAIT=$2; shift 2;;
  -h|--help) sed -n '2,16p' "$0"; exit 0;;
  *) echo "unknown arg $1" >&2; exit 2;; esac; done
for t in nginx redis-server redis-cli wrk curl taskset python3; do command -v $t >/dev/null || { echo "missing tool: $t" >&2; exit 2; }; done
[ -x "$BIN" ] || { echo "no binary at $BIN (build the release preset or pass --bin)" >&2; exit 2; }
[ "$SECS" -lt 60 ] || { echo "--secs must be < 60 (the entries' lifetime)" >&2; exit 2; }

W=$(mktemp -d /tmp/virex-regional-compare.XXXX); chmod 755 "$W"
PIDS=""
. "$(dirname "$0")/lib.sh"   # tree_pids stop_tree cleanup (+ traps) free_port wait_http tree_cpu lock unlock

head -c 1024 /dev/zero | tr '\0' 'x' > "$W/body"; mkdir -p "$W/www/edge" "$W/www/reg" "$W/www/origin"
for d in edge reg origin; do cp "$W/body" "$W/www/$d/x"; done

# --- origin (nginx, core 1) with stub_status.
OP=$(free_port); SP=$(free_port)
cat > "$W/origin.conf" <<C
user root; worker_processes 1; daemon off; pid $W/origin.pid; error_log $W/origin.err;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000; keepalive_timeout 300s; open_file_cache max=100;
  default_type application/octet-stream;
  server { listen 127.0.0.1:$OP; root $W/www; location / { add_header Cache-Control "public, max-age=60"; } }
  server { listen 127.0.0.1:$SP; location = /status { stub_status; } } }
C
taskset -c 1 nginx -c "$W/origin.conf" -p "$W" > /dev/null 2>&1 &
PIDS="$PIDS $!"
wait_http "$OP" /edge/x || { echo "origin did not start" >&2; cat "$W/origin.err" >&2; exit 1; }
origin_requests() { curl -s -m 2 "http://127.0.0.1:$SP/status" | awk 'NR==3 {print $3}'; }

# --- redis (core 1).
RP=$(free_port)
taskset -c 1 redis-server --port "$RP" --bind 127.0.0.1 --save "" --appendonly no --dir "$W" --logfile "$W/redis.log" &
RPID=$!; PIDS="$PIDS $RPID"
for _ in $(seq 100); do [ "$(redis-cli -p "$RP" ping 2>/dev/null)" = PONG ] && break; sleep 0.1; done
[ "$(redis-cli -p "$RP" ping 2>/dev/null)" = PONG ] || { echo "redis did not start" >&2; exit 1; }

# --- virex-edge (core 0).
P=$(free_port); A=$(free_port)
cat > "$W/edge.yaml" <<Y
node: {workers: 1}
limits: {idle_timeout: 300s}
listeners:
  - {name: bench, address: "127.0.0.1:$P"}
  - {name: admin, address: "127.0.0.1:$A", admin: true}
upstreams:
  origin: {endpoints: ["127.0.0.1:$OP"], pool: {max_idle: 64}}
routes:
  - {name: edge, match: {prefix: /edge/}, upstream: origin, cache: {edge_ttl: 60s}}
  - {name: reg, match: {prefix: /reg/}, upstream: origin,
     cache: {edge_ttl: 60s, regional_ttl: 10m, scope: private, identity: {header: X-User}}}
  - {name: origin, match: {prefix: /origin/}, upstream: origin}
cache:
  edge: {max_bytes: 512MiB}
  regional: {redis: {address: "127.0.0.1:$RP", timeout: 100ms}}
observability: {log_level: warn}
Y
"$BIN" check-config "$W/edge.yaml" > "$W/check.out" 2>&1 || { echo "config rejected:" >&2; cat "$W/check.out" >&2; exit 1; }
taskset -c 0 "$BIN" run --config "$W/edge.yaml" > "$W/edge.log" 2>&1 &
EPID=$!; PIDS="$PIDS $EPID"
wait_http "$P" /origin/x || { echo "virex-edge did not start:" >&2; tail "$W/edge.log" >&2; exit 1; }

metric() { # name -> summed value from the admin listener
  curl -s -m 2 "http://127.0.0.1:$A/metrics" | awk -v n="$1" '$1 == n || index($1, n "{") == 1 {s += $2} END {printf "%.6f\n", s + 0}'
}
check() { # scenario url -> 0 when the answer is 200 + 1 KiB from the expected tier
  local code
  code=$(curl -s -m 2 -H "X-User: bench-user" -D "$W/hdr" -o "$W/check.body" -w '%{http_code}' "$2")
  [ "$code" = 200 ] && [ "$(wc -c < "$W/check.body")" = 1024 ] || return 1
  case $1 in
    edge) grep -qi '^Cache-Status: virex-edge; hit' "$W/hdr";;
    regional) grep -qi '^Cache-Status: virex-regional; hit' "$W/hdr";;
    origin) return 0;;
  esac
}
run() { # scenario round
  local s=$1 url path c0 c1 r0 r1 rc0 rc1 ps0 ps1 pc0 pc1 ls0 ls1 lc0 lc1 pre post oreq
  case $s in edge) path=/edge/x;; regional) path=/reg/x;; origin) path=/origin/x;; esac
  url="http://127.0.0.1:$P$path?r=$2"
  curl -s -m 2 -H "X-User: bench-user" -o /dev/null "$url"   # fill
  [ "$s" = regional ] && for _ in $(seq 50); do [ "$(redis-cli -p "$RP" dbsize)" -gt "$(( $2 - 1 ))" ] && break; sleep 0.05; done
  check "$s" "$url" && pre=ok || pre=FAIL
  ps0=$(metric virex_regional_pipeline_depth_sum); pc0=$(metric virex_regional_pipeline_depth_count)
  ls0=$(metric virex_regional_command_duration_seconds_sum); lc0=$(metric virex_regional_command_duration_seconds_count)
  r0=$(origin_requests); c0=$(tree_cpu "$EPID"); rc0=$(tree_cpu "$RPID")
  taskset -c 1 wrk -t1 -c"$CONNS" -d"${SECS}s" --latency -H "X-User: bench-user" "$url" > "$W/wrk.out" 2>&1
  c1=$(tree_cpu "$EPID"); rc1=$(tree_cpu "$RPID"); r1=$(origin_requests)
  ps1=$(metric virex_regional_pipeline_depth_sum); pc1=$(metric virex_regional_pipeline_depth_count)
  ls1=$(metric virex_regional_command_duration_seconds_sum); lc1=$(metric virex_regional_command_duration_seconds_count)
  check "$s" "$url" && post=ok || post=FAIL
  oreq=$((r1 - r0 - 1))
  awk -v L="$s" -v R="$2" -v ticks=$((c1 - c0)) -v rticks=$((rc1 - rc0)) -v hz="$(getconf CLK_TCK)" -v oreq=$oreq \
      -v pre="$pre" -v post="$post" -v res="$W/res" -v pipe="$(awk -v a="$ps0" -v b="$ps1" -v c="$pc0" -v d="$pc1" 'BEGIN {if (d > c) printf "%.2f", (b - a) / (d - c); else print "-"}')" \
      -v lat="$(awk -v a="$ls0" -v b="$ls1" -v c="$lc0" -v d="$lc1" 'BEGIN {if (d > c) printf "%.0f", (b - a) / (d - c) * 1e6; else print "-"}')" '
    function us(v) { if (v ~ /us$/) return v + 0; if (v ~ /ms$/) return v * 1000; if (v ~ /s$/) return v * 1e6; return v }
    /requests in/ {n=$1} /Requests\/sec/ {rps=$2} /^ +50%/ {p50=$2} /^ +99%/ {p99=$2} /Non-2xx/ {bad=$NF} /Socket errors/ {err=$0}
    END {cpu = n ? ticks * 1e6 / hz / n : 0; rcpu = n ? rticks * 1e6 / hz / n : 0
         ok = pre == "ok" && post == "ok" && (L == "origin" || oreq == 0) && !bad && !err && n
         printf "round %s %-9s rps=%-10s p50=%-8s p99=%-8s cpu_us/req=%-6.2f redis_cpu_us/req=%-5.2f cmds/write=%-6s redis_rtt_us=%-5s requests=%s origin_reqs=%s check=%s/%s %s\n",
                R, L, rps, p50, p99, cpu, rcpu, pipe, lat, n, oreq, pre, post, (ok ? "" : "INVALID")
         if (ok) printf "%s %.4f %s %s %s %s\n", L, cpu, rps, us(p50), us(p99), pipe >> res }' "$W/wrk.out"
}

[ -n "$LOCK" ] && exec {LFD}>>"$LOCK"
echo "# $(date -u +%FT%TZ) commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo none) bin=$BIN" \
     "cpu=\"$(awk -F: '/model name/ {print $2; exit}' /proc/cpuinfo | sed 's/^ *//')\" secs=$SECS conns=$CONNS rounds=$ROUNDS" \
     "$(redis-server --version | awk '{print $3}') $(nginx -v 2>&1 | sed 's/.*: //')"
lock
for s in /edge/x /reg/x /origin/x; do taskset -c 1 wrk -t1 -c"$CONNS" -d1s -H "X-User: bench-user" "http://127.0.0.1:$P$s?r=0" > /dev/null 2>&1; done
set -- edge regional origin
for r in $(seq "$ROUNDS"); do
  [ "$r" = 1 ] || lock
  for i in 0 1 2; do j=$(( (i + r - 1) % 3 + 1 )); run "${!j}" "$r"; done
  unlock
done
[ -s "$W/res" ] || { echo "no valid measurement" >&2; exit 1; }
awk '
  function median(s,   a, n, i, j, t) { n = split(s, a, " ");
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
  { cpu[$1] = cpu[$1] " " $2; rps[$1] = rps[$1] " " $3; p50[$1] = p50[$1] " " $4; p99[$1] = p99[$1] " " $5; k[$1]++
    if ($6 != "-") pipe[$1] = pipe[$1] " " $6 }
  END {
    print "\n| scenario | valid rounds | rps | p50 µs | p99 µs | cpu µs/req | cpu vs edge hit | p99 vs edge hit | cmds/write |"
    print "|---|---|---|---|---|---|---|---|---|"
    split("edge regional origin", o, " ")
    for (i = 1; i <= 3; i++) { s = o[i]; if (!(s in k)) continue
      printf "| %s | %d | %.0f | %.0f | %.0f | %.2f | %s | %s | %s |\n", s, k[s], median(rps[s]), median(p50[s]), median(p99[s]),
             median(cpu[s]), ("edge" in k) ? sprintf("%.2f", median(cpu[s]) / median(cpu["edge"])) : "-",
             ("edge" in k) ? sprintf("%.2f", median(p99[s]) / median(p99["edge"])) : "-", (s in pipe) ? median(pipe[s]) : "-" } }' "$W/res"
