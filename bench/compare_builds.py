#!/usr/bin/python3
"""Two builds of the same Google Benchmark program, side by side in one run: median times and the
ratio B / A per benchmark (below 1: B is faster).

    /usr/bin/python3 bench/compare_builds.py --a main=/tmp/main/build/bench/kl_fused \\
        --b simd=build/bench/kl_fused --rounds 5 [--filter REGEX] [--env-b TAPEGRAD_SIMD=avx2]

Each round runs A once, then B once (fresh processes, alternating, so that load from other
processes on a shared machine hits both alike); the table shows each benchmark's median over the
rounds and the median of the per-round ratios. Benchmarks only one side has are listed apart.
Typical pairs: main against a branch (is any kernel slower?), -Dnative=false against the native
build (is the portable build within 10%?), one build under two TAPEGRAD_SIMD targets.

bench/kernels.cpp uses the public API only, so it can be built against a tapegrad that lacks it:
    c++ -std=c++17 -O3 -DTG_BENCH_NO_SIMD_TARGET -I MAIN/include bench/kernels.cpp \\
        MAIN/build/libtapegrad.a -lbenchmark -lopenblas -lpng16 -lz -lpthread -o /tmp/kernels_main
"""
import argparse
import json
import os
import statistics
import subprocess


def run(binary, env_pairs, min_time, filter_regex, clock):
    command = [binary, "--benchmark_format=json", f"--benchmark_min_time={min_time}"]
    if filter_regex:
        command.append(f"--benchmark_filter={filter_regex}")
    env = dict(os.environ)
    for pair in env_pairs:
        key, _, value = pair.partition("=")
        env[key] = value
    report = json.loads(subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout)
    scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}
    times = {e["name"]: e[clock] * scale[e["time_unit"]] for e in report["benchmarks"]
             if e.get("run_type", "iteration") == "iteration"}
    return times, report.get("context", {})


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--a", required=True, help="NAME=BINARY, the reference")
    parser.add_argument("--b", required=True, help="NAME=BINARY, compared with A")
    parser.add_argument("--env-a", action="append", default=[], help="KEY=VALUE for A's runs")
    parser.add_argument("--env-b", action="append", default=[], help="KEY=VALUE for B's runs")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--min-time", type=float, default=0.2)
    parser.add_argument("--filter", default="")
    parser.add_argument("--cpu-time", action="store_true",
                        help="compare CPU time instead of wall time (single-threaded runs on a loaded "
                             "machine: time spent waiting for a CPU does not count)")
    args = parser.parse_args()
    name_a, _, binary_a = args.a.partition("=")
    name_b, _, binary_b = args.b.partition("=")

    rounds = []
    for _ in range(args.rounds):
        clock = "cpu_time" if args.cpu_time else "real_time"
        a, context_a = run(binary_a, args.env_a, args.min_time, args.filter, clock)
        b, context_b = run(binary_b, args.env_b, args.min_time, args.filter, clock)
        rounds.append((a, b))
    common = [n for n in rounds[0][0] if n in rounds[0][1]]
    print(f"A = {name_a} ({binary_a}, simd {context_a.get('simd_target', '?')}"
          f"{', ' + ' '.join(args.env_a) if args.env_a else ''})")
    print(f"B = {name_b} ({binary_b}, simd {context_b.get('simd_target', '?')}"
          f"{', ' + ' '.join(args.env_b) if args.env_b else ''})")
    print(f"load average {os.getloadavg()[0]:.2f}; medians over {args.rounds} alternating rounds, "
          f"{'CPU' if args.cpu_time else 'wall'} time, µs")
    width = max([len(n) for n in common] + [10])
    print(f"{'benchmark':<{width}} {name_a:>12} {name_b:>12} {'B/A':>7}")
    for n in common:
        ta = statistics.median(r[0][n] for r in rounds)
        tb = statistics.median(r[1][n] for r in rounds)
        ratio = statistics.median(r[1][n] / r[0][n] for r in rounds)
        print(f"{n:<{width}} {ta * 1e6:12.2f} {tb * 1e6:12.2f} {ratio:7.3f}")
    only = [n for n in rounds[0][0] if n not in rounds[0][1]] + [n for n in rounds[0][1] if n not in rounds[0][0]]
    if only:
        print("in one build only: " + ", ".join(only))


if __name__ == "__main__":
    main()
