#!/usr/bin/env bash
# Benchmark huly-bridge against socat and against no forwarder on loopback:
# bulk throughput of one connection, connections/s (connect, 100 B each way,
# close) with 1 and 32 clients, and memory per idle connection with 1,000
# held open. Interleaved repetitions; prints a Markdown table of medians
# (min–max) and ratios. Not part of the test suite: the numbers depend on
# the machine and on whatever else runs on it.
#
# Usage: tests/bench/bridge.sh [--reps N] [--duration D] [--hold N] [--json FILE]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"

if ! command -v socat >/dev/null; then
  echo "installing socat (Debian package)" >&2
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq >&2 && apt-get install -y -qq socat >&2
  else
    sudo apt-get update -qq >&2 && sudo apt-get install -y -qq socat >&2
  fi
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$root/go"
export GOTOOLCHAIN=local
go build -o "$work/huly-bridge" ./cmd/huly-bridge
go build -o "$work/benchtool" ./bridge/internal/benchtool

# Go's listen(2) backlog is net.core.somaxconn (huly-bridge also raises it
# to that bound explicitly); socat's is 5 unless given backlog=.
echo "net.core.somaxconn = $(cat /proc/sys/net/core/somaxconn)" >&2
echo "socat: $(socat -V 2>/dev/null | sed -n 's/^socat version \([^ ]*\).*/\1/p')" >&2
# 1,000 held connections take ~5 descriptors each in the bridge (two sockets,
# splice pipes) and 1,000 processes for socat.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

"$work/benchtool" run --bridge "$work/huly-bridge" --socat "$(command -v socat)" "$@"
