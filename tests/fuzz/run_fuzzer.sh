#!/bin/sh
# tests/fuzz/run_fuzzer.sh FUZZER SECONDS SEEDS WORK [libFuzzer options...]
#
# Fuzzes for SECONDS starting from the seed corpus SEEDS (only read). New interesting inputs go
# to WORK/corpus, kept between runs, so longer or repeated runs build on each other; a crash,
# leak, timeout or out-of-memory input goes to WORK/crashes/ and the exit status is non-zero.
# Options after WORK go to libFuzzer and override the defaults here (docs/fuzzing.md).
set -eu
fuzzer=$1 seconds=$2 seeds=$3 work=$4
shift 4
mkdir -p "$work/corpus" "$work/crashes"
# -malloc_limit_mb: no input of a few KiB has any business allocating more than that.
exec "$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=256 \
  -print_final_stats=1 -artifact_prefix="$work/crashes/" "$@" "$work/corpus" "$seeds"
