#!/bin/sh
# src/cuda/nvcc_logged.sh LOG NVCC ARGS... — runs nvcc with ARGS, keeping everything it prints
# (ptxas -v's register, stack and spill report for every kernel) in LOG instead of the build's
# output; on failure it prints LOG. scripts/ptxas_report.py sums the logs.
log="$1"
shift
"$@" > "$log" 2>&1
status=$?
[ $status -ne 0 ] && cat "$log" >&2
exit $status
