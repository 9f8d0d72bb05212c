#!/usr/bin/env python3
"""Sums the ptxas -v reports that the build keeps next to each CUDA object
(build/<file>.ptxas.log, written by src/cuda/nvcc_logged.sh): kernels compiled, register spills,
stack frames and the most registers any kernel uses, per file and in all.

    scripts/ptxas_report.py [BUILD_DIR]        # default: build

Exits 1 if any kernel spills (the build already refuses that: -Xptxas -warn-spills,-Werror) or if
no log is found in a build that has CUDA objects.
"""
import glob
import os
import re
import subprocess
import sys


def demangle(names):
    try:
        out = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True,
                             check=True).stdout
        return out.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return names


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    logs = sorted(glob.glob(os.path.join(build, "**", "*.ptxas.log"), recursive=True))
    if not logs:
        print(f"ptxas report: no *.ptxas.log in {build} (built without CUDA)")
        return 0
    totals = {"kernels": 0, "spill": 0, "stack": 0, "registers": 0}
    stacked = []
    print(f"{'file':<28} {'kernels':>7} {'spill bytes':>11} {'with stack':>10} {'max regs':>8}")
    for log in logs:
        kernels = spill = registers = 0
        current = None
        with_stack = []
        for line in open(log, errors="replace"):
            m = re.search(r"Compiling entry function '([^']+)'", line)
            if m:
                current = m.group(1)
                kernels += 1
            m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line)
            if m and current:
                spill += int(m.group(2)) + int(m.group(3))
                if int(m.group(1)) > 0:
                    with_stack.append((current, int(m.group(1))))
            m = re.search(r"Used (\d+) registers", line)
            if m:
                registers = max(registers, int(m.group(1)))
        name = os.path.basename(log).replace(".ptxas.log", ".cu")
        print(f"{name:<28} {kernels:>7} {spill:>11} {len(with_stack):>10} {registers:>8}")
        totals["kernels"] += kernels
        totals["spill"] += spill
        totals["stack"] += len(with_stack)
        totals["registers"] = max(totals["registers"], registers)
        stacked += with_stack
    print(f"{'all':<28} {totals['kernels']:>7} {totals['spill']:>11} {totals['stack']:>10} "
          f"{totals['registers']:>8}")
    for (mangled, size), readable in zip(stacked, demangle([m for m, _ in stacked])):
        print(f"  stack frame of {size} bytes (no spill): {readable[:110]}")
    return 1 if totals["spill"] else 0


if __name__ == "__main__":
    sys.exit(main())
