#!/usr/bin/env bash
# Upstream connection reuse, per-worker pools, under steady and churning client load: GET /pass through a
# proxy with W workers to ONE nginx origin (1 KiB static file), reuse = 1 - upstream connections opened /
# upstream requests, both counted at the origin (delta of its stub_status "accepts" and "requests" over the run).
# Proxies: virex-edge (`upstreams.origin.pool.max_idle: N`, per endpoint per worker; /metrics on an admin listener
# gives virex_upstream_{requests,connections,connections_reused}_total as a cross-check) and nginx proxy_pass
# (`upstream { keepalive N; }`, per worker process). Both are run with `--workers` (2) and N in `--idle` ("4 32"),
# and, as the stand-in for ONE pool shared by all workers, with 1 worker and N x workers idle connections (same
# total idle capacity, one pool): the gap between the two rows is what sharing the pool could win.
# Loads (wrk -t1 -cCONNS): steady = keep-alive; churn = `Connection: close` on every request, so every request
# is a new client connection that the kernel hands to one of the workers (SO_REUSEPORT hash for virex-edge,
# the shared listen socket for nginx): per-worker concurrency moves from moment to moment.
# nginx's upstream keepalive_requests/keepalive_timeout are unbounded here (defaults 1000 / 60 s) so that only
# pooling decides the count; the origin never closes a connection itself.
# Placement as proxy_compare.sh: the proxy (all its workers) on core 0, the origin and wrk on core 1.
# Per line: load, proxy, workers, idle, rps, client requests, origin conns/reqs, reuse, virex metrics (virex-edge),
# the proxy's connections open to the origin and the client and upstream connections per worker (epoll instance)
# halfway through the run, non-2xx / socket errors.
# Usage: bench/load/pool_reuse.sh [--secs N (10)] [--conns N (64)] [--rounds N (2)] [--workers N (2)]
#          [--idle "4 32"] [--loads "steady churn"] [--only "virex-edge nginx"] [--no-shared]
#          [--bin PATH (build/release/src/virex-edge)] [--lock FILE [--lock-wait SECS (1800)]]
# Needs: nginx wrk curl taskset ss python3 (scripts/deps.sh bench).
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SECS=10; CONNS=64; ROUNDS=2; WORKERS=2; IDLE="4 32"; LOADS="steady churn"; ONLY="virex-edge nginx"; SHARED=1
BIN=$ROOT/build/release/src/virex-edge; LOCK=""; LOCKWAIT=1800
while [ $# -gt 0 ]; do case "$1" in
  --secs) SECS=$2; shift 2;; --conns) CONNS=$2; shift 2;; --rounds) ROUNDS=$2; shift 2;;
  --workers) WORKERS=$2; shift 2;; --idle) IDLE=$2; shift 2;; --loads) LOADS=$2; shift 2;;
  --only) ONLY=$2; shift 2;; --no-shared) SHARED=0; shift;; --bin) BIN=$2; shift 2;;
  --lock) LOCK=$2; shift 2;; --lock-wait) LOCKWAIT=$2; shift 2;;
  -h|--help) sed -n '2,22p' "$0"; exit 0;;
  *) echo "unknown arg $1" >&2; exit 2;; esac; done
for t in nginx wrk curl taskset ss python3; do command -v $t >/dev/null || { echo "missing tool: $t (scripts/deps.sh bench)" >&2; exit 2; }; done
[ "$(nproc)" -ge 2 ] || echo "warning: fewer than 2 cores; proxy and wrk share a core" >&2

W=$(mktemp -d /tmp/virex-pool-reuse.XXXX); chmod 755 "$W"
PIDS=""
. "$(dirname "$0")/lib.sh"   # tree_pids stop_tree cleanup (+ traps) free_port wait_http tree_cpu lock unlock

origin_counters() { # -> "accepts requests" from the origin's stub_status (this request's own connection included)
  curl -s -m 2 "http://127.0.0.1:$SP/status" | awk 'NR==3 {print $1, $3}'
}
virex_counters() { # admin port -> "requests connections reused" summed over the series (0 0 0 when not virex)
  [ -n "$1" ] || { echo "0 0 0"; return; }
  curl -s -m 2 "http://127.0.0.1:$1/metrics" | awk '
    /^virex_upstream_requests_total/ {r += $NF} /^virex_upstream_connections_total/ {c += $NF}
    /^virex_upstream_connections_reused_total/ {u += $NF} END {print r+0, c+0, u+0}'
}
sample_midrun() { # root pid -> "open clients upstream": the proxy's ESTABLISHED sockets to the origin, then the client
  # and the upstream connections per worker ("a/b", largest first), one look halfway through the run (on core 1).
  # A worker is an epoll instance (virex-edge: one io_context per worker thread; nginx: one per worker process);
  # its sockets are the targets listed in /proc/PID/fdinfo/EPFD, matched by inode against `ss -e`.
  local pids; pids=$(tree_pids "$1")
  taskset -c 1 ss -Htne state established "( sport = :$PPORT )" > "$W/ss.cli"
  taskset -c 1 ss -Htnep state established "( dport = :$OP )" > "$W/ss.up"
  taskset -c 1 python3 - "$W/ss.cli" "$W/ss.up" "$WK" $pids <<'PY'
import os, re, sys
ino = lambda f: {int(m) for m in re.findall(r"ino:(\d+)", open(f).read())}
cli, up, nw, pids = ino(sys.argv[1]), ino(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
open_up = sum(1 for l in open(sys.argv[2]) if re.search(r"pid=(%s)," % "|".join(pids), l))
per = []
for pid in pids:
    try: fds = os.listdir(f"/proc/{pid}/fd")
    except OSError: continue
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") != "anon_inode:[eventpoll]": continue
            t = {int(m, 16) for m in re.findall(r"^tfd:.*\bino:([0-9a-f]+)", open(f"/proc/{pid}/fdinfo/{fd}").read(), re.M)}
        except OSError: continue
        per.append((len(t & cli), len(t & up)))
per = sorted(per, reverse=True)[:nw] or [(0, 0)]
print(open_up, "/".join(str(c) for c, _ in per), "/".join(str(u) for _, u in sorted(per, key=lambda x: -x[1])))
PY
}

mkdir -p "$W/www"; head -c 1024 /dev/zero | tr '\0' 'x' > "$W/www/pass"

# --- origin: nginx, one worker, core 1 (with wrk); never closes a connection itself; stub_status on a second port.
OP=$(free_port); SP=$(free_port)
cat > "$W/origin.conf" <<C
user root; worker_processes 1; daemon off; pid $W/origin.pid; error_log $W/origin.err;
events { worker_connections 8192; }
http { access_log off; keepalive_requests 1000000; keepalive_timeout 300s; open_file_cache max=100;
  default_type application/octet-stream;
  server { listen 127.0.0.1:$OP; root $W/www; }
  server { listen 127.0.0.1:$SP; location = /status { stub_status; } } }
C
taskset -c 1 nginx -c "$W/origin.conf" -p "$W" > /dev/null 2>&1 &
PIDS="$PIDS $!"
wait_http "$OP" /pass || { echo "origin did not start:" >&2; cat "$W/origin.err" >&2; exit 1; }
if [ -n "$(echo " $ONLY " | grep ' virex-edge ')" ] && [ ! -x "$BIN" ]; then
  echo "# virex-edge: skipped, no binary at $BIN (build the release preset or pass --bin)" >&2
  ONLY=$(echo "$ONLY" | sed 's/virex-edge//')
fi

# --- the configurations: "proxy workers idle" (one proxy instance each, started and stopped per measurement).
CONFIGS=""
for s in $ONLY; do for n in $IDLE; do
  CONFIGS="$CONFIGS $s:$WORKERS:$n"
  [ "$SHARED" = 1 ] && [ "$WORKERS" -gt 1 ] && CONFIGS="$CONFIGS $s:1:$((n * WORKERS))"
done; done

PPID_=""; PPORT=""; APORT=""
start_proxy() { # proxy workers idle -> sets PPID_ PPORT APORT; returns 1 when it did not come up
  local s=$1 w=$2 n=$3 pid
  PPORT=$(free_port); APORT=""
  case $s in
  virex-edge) APORT=$(free_port); cat > "$W/edge.yaml" <<Y
node: {workers: $w}
limits: {idle_timeout: 300s}
listeners:
  - {name: bench, address: "127.0.0.1:$PPORT"}
  - {name: admin, address: "127.0.0.1:$APORT", admin: true}
upstreams:
  origin: {endpoints: ["127.0.0.1:$OP"], pool: {max_idle: $n, idle_timeout: 300s}}
routes:
  - {name: pass, match: {path: /pass}, upstream: origin}
observability: {log_level: warn}
Y
    taskset -c 0 "$BIN" run --config "$W/edge.yaml" > "$W/proxy.log" 2>&1 &;;
  nginx) cat > "$W/nginx.conf" <<C
user root; worker_processes $w; daemon off; pid $W/nginx.pid; error_log $W/nginx.err;
events { worker_connections 8192; }
http { access_log off; keepalive_requests 1000000; keepalive_timeout 300s;
  upstream origin { server 127.0.0.1:$OP; keepalive $n; keepalive_requests 1000000; keepalive_timeout 300s; }
  server { listen 127.0.0.1:$PPORT;
    location /pass { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
C
    taskset -c 0 nginx -c "$W/nginx.conf" -p "$W" > "$W/proxy.log" 2>&1 &;;
  *) echo "unknown proxy $s (virex-edge nginx)" >&2; exit 2;;
  esac
  pid=$!; PIDS="$PIDS $pid"; PPID_=$pid
  if ! wait_http "$PPORT" /pass; then
    echo "# $s workers=$w idle=$n: did not answer GET /pass within 10 s:" $(tail -n 5 "$W/proxy.log") >&2
    stop_proxy; return 1
  fi
}
stop_proxy() { stop_tree "$PPID_"; PIDS=$(echo "$PIDS" | sed "s/ $PPID_\b//"); PPID_=""; }

wrk_load() { # load secs -> wrk output in $W/wrk.out
  local hdr=(); [ "$1" = churn ] && hdr=(-H "Connection: close")
  taskset -c 1 wrk -t1 -c"$CONNS" -d"${2}s" --latency "${hdr[@]}" "http://127.0.0.1:$PPORT/pass" > "$W/wrk.out" 2>&1
}

measure() { # round load proxy workers idle -> one line; appends a result row to $W/res
  local r=$1 load=$2 s=$3 w=$4 n=$5 a0 q0 a1 q1 vr0 vc0 vu0 vr1 vc1 vu1
  start_proxy "$s" "$w" "$n" || return 0
  wrk_load "$load" 1                                   # warm-up: fills the pools (not counted)
  sleep 0.5
  read -r a0 q0 < <(origin_counters); read -r vr0 vc0 vu0 < <(virex_counters "$APORT")
  (sleep "$(awk -v s="$SECS" 'BEGIN {print s / 2}')"; WK=$w sample_midrun "$PPID_" > "$W/mid") &
  local sampler=$!
  wrk_load "$load" "$SECS"
  read -r vr1 vc1 vu1 < <(virex_counters "$APORT"); read -r a1 q1 < <(origin_counters)
  wait "$sampler"; local open wcli wup; read -r open wcli wup < "$W/mid"
  stop_proxy
  awk -v R="$r" -v L="$load" -v S="$s" -v Wk="$w" -v N="$n" -v conns=$((a1 - a0 - 1)) -v oreq=$((q1 - q0 - 1)) \
      -v vr=$((vr1 - vr0)) -v vc=$((vc1 - vc0)) -v vu=$((vu1 - vu0)) -v open="$open" -v wcli="$wcli" -v wup="$wup" -v res="$W/res" '
    /requests in/ {n=$1} /Requests\/sec/ {rps=$2} /Non-2xx/ {bad=$NF} /Socket errors/ {err=$0}
    END { reuse = (oreq > 0 ? 1 - conns / oreq : 0)
          vm = (S == "virex-edge") ? sprintf("virex: reqs=%d opened=%d reused=%d reuse=%.4f", vr, vc, vu, (vr ? 1 - vc / vr : 0)) : ""
          printf "round %s %-6s %-10s workers=%s idle=%-3s rps=%-9s requests=%-7s origin: conns=%-6d reqs=%-7d reuse=%.4f %s open_midrun=%s per_worker: clients=%s upstream=%s %s %s\n",
                 R, L, S, Wk, N, rps, n, conns, oreq, reuse, vm, open, wcli, wup, (bad ? "INVALID non2xx=" bad : ""), (err ? "INVALID " err : "")
          if (!bad && n) printf "%s %s %s %s %.6f %d %d %s %s %s %s\n", L, S, Wk, N, reuse, conns, oreq, rps, open, wcli, wup >> res }' "$W/wrk.out"
}

[ -n "$LOCK" ] && exec {LFD}>>"$LOCK"
echo "# $(date -u +%FT%TZ) commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo none)" \
     "cpu=\"$(awk -F: '/model name/ {print $2; exit}' /proc/cpuinfo | sed 's/^ *//')\" secs=$SECS conns=$CONNS rounds=$ROUNDS" \
     "workers=$WORKERS idle=\"$IDLE\" loads=\"$LOADS\" configs:$CONFIGS; $(nginx -v 2>&1 | sed 's/.*: //')"
for r in $(seq "$ROUNDS"); do
  lock
  for load in $LOADS; do for c in $CONFIGS; do IFS=: read -r s w n <<< "$c"; measure "$r" "$load" "$s" "$w" "$n"; done; done
  unlock
done
[ -s "$W/res" ] || { echo "no valid measurement" >&2; exit 1; }
awk -v order="$CONFIGS" -v loads="$LOADS" '
  function median(s,   a, n, i, j, t) { n = split(s, a, " ");
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
  { k = $1 SUBSEP $2 ":" $3 ":" $4; ru[k] = ru[k] " " $5; cn[k] = cn[k] " " $6; rq[k] = rq[k] " " $7
    rps[k] = rps[k] " " $8; op[k] = op[k] " " $9; sp[k] = sp[k] " " $10; su[k] = su[k] " " $11; seen[k] = 1 }
  END {
    print "\n| load | proxy | workers | idle per worker | pool | rps | upstream reqs per run | conns opened per run | reuse (median) | open to origin mid-run | per worker mid-run: clients | per worker mid-run: upstream |"
    print "|---|---|---|---|---|---|---|---|---|---|---|---|"
    nl = split(loads, L, " "); nc = split(order, C, " ")
    for (i = 1; i <= nl; i++) for (j = 1; j <= nc; j++) { k = L[i] SUBSEP C[j]; if (!(k in seen)) continue
      split(C[j], c, ":")
      printf "| %s | %s | %s | %s | %s | %.0f | %s | %s | %.2f %% | %s | %s | %s |\n", L[i], c[1], c[2], c[3],
             (c[2] == 1 ? "one (shared stand-in)" : "per worker"), median(rps[k]), substr(rq[k], 2), substr(cn[k], 2),
             100 * median(ru[k]), substr(op[k], 2), substr(sp[k], 2), substr(su[k], 2) } 
    print "(reuse = 1 - conns opened / upstream requests, both from the origin'"'"'s stub_status over each run; per-run values space-separated, one per round)" }' "$W/res"
