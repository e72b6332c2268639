#!/usr/bin/env bash
# Installs the Debian bookworm packages Virex Edge builds, tests and benchmarks with. Idempotent: does
# nothing when everything is present. Usage: scripts/deps.sh [build|test|demo|bench]... (default: build test)
set -euo pipefail
build=(cmake ninja-build ccache mold g++ pkg-config
       libboost1.81-all-dev libboost-json1.81-dev libboost-url1.81-dev
       libyaml-cpp-dev libcli11-dev libspdlog-dev libfmt-dev libsystemd-dev
       libgtest-dev libgmock-dev googletest libbenchmark-dev
       libprotobuf-dev protobuf-compiler libgrpc++-dev protobuf-compiler-grpc
       libssl-dev libnghttp2-dev libhiredis-dev libpq-dev libpqxx-dev)
test=(clang-14 libclang-rt-14-dev python3 curl wrk prometheus procps systemd chromium fonts-liberation
      nginx-light openssl nghttp2-client redis-server postgresql-15 postgresql-client-15
      python3-h2 python3-psycopg2 python3-redis)
demo=(redis-server postgresql-15 python3-psycopg2)
bench=(nginx-light haproxy h2o varnish wrk util-linux valgrind linux-perf time)
want=()
[ $# -eq 0 ] && set -- build test
for group in "$@"; do
  case $group in
    build) want+=("${build[@]}");; test) want+=("${test[@]}");; bench) want+=("${bench[@]}");;
    demo) want+=("${demo[@]}");;
    *) echo "deps.sh: unknown group $group" >&2; exit 2;;
  esac
done
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "deps.sh: installing ${missing[*]}" >&2
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
