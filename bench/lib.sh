#!/usr/bin/env bash
# Helpers shared by the benchmarks in bench/ (sourced, not run): a work folder and the
# processes a benchmark starts, stopped by pid on exit; free loopback ports; CPU ticks of a
# process; ratios. A benchmark calls bench_init first and bench_track for every process it
# starts in the background.

# Makes $work (a temp folder; `bench_init DIR_TEMPLATE` names it) and the exit trap that stops
# every tracked process by pid and removes $work (kept when R58_BENCH_KEEP is set).
# shellcheck disable=SC2120 # the template is optional
bench_init() {
  work=$(mktemp -d ${1:+"$1"})
  bench_pids=()
  bench_cleanup_hooks=()
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
}

# Runs the function FN once on exit, after the processes are stopped (e.g. to remove a cgroup).
bench_on_exit() { bench_cleanup_hooks+=("$1"); }

bench_cleanup() {
  local p h
  for p in "${bench_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${bench_pids[@]}"; do wait "$p" 2>/dev/null || true; done
  for h in "${bench_cleanup_hooks[@]}"; do "$h" || true; done
  if [ -n "${R58_BENCH_KEEP:-}" ]; then echo "kept: $work" >&2; else rm -rf "$work"; fi
}

# Remembers PID (default: the last background job) to be stopped on exit.
# shellcheck disable=SC2120 # the pid is optional
bench_track() { bench_pids+=("${1:-$!}"); }

# Stops the given tracked pids now (TERM, then waits for them).
bench_stop() {
  local p
  for p in "$@"; do kill "$p" 2>/dev/null || true; done
  for p in "$@"; do wait "$p" 2>/dev/null || true; done
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Waits up to 10 s for URL to answer 2xx; exits the benchmark otherwise.
wait_http() {
  for _ in $(seq 100); do curl -sf "$1" >/dev/null && return 0; sleep 0.1; done
  echo "no answer from $1" >&2
  exit 1
}

# User + system CPU ticks of PID so far.
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }

# CPU seconds between two tick counts.
cpu_seconds() { echo "scale=3; ($2 - $1) / $(getconf CLK_TCK)" | bc; }

# A / B to three decimals.
ratio() { echo "scale=3; $1 / $2" | bc; }
