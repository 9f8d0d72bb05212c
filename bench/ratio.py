#!/usr/bin/python3
"""Runs a Google Benchmark binary once and prints the ratio of benchmark pairs.

Both sides of every pair run in the same process, their repetitions interleaved, so machine
noise hits them alike: absolute times drift between runs on these machines, ratios hold.

    /usr/bin/python3 bench/ratio.py build/bench/op_overhead \\
        --pair tapegrad_chain libtorch_chain --repetitions 5

For each pair (A, B) it prints the median real time of each and B / A, i.e. how many times
faster A is than B.

With --baseline OTHER_BINARY (the same benchmark file built from another commit, e.g. main),
the two binaries run alternately, --rounds times each, in this one run; it then prints, for
every benchmark named in a pair, the median time of each build and the median over the rounds of
baseline / this build (above 1: this build is faster).

    /usr/bin/python3 bench/ratio.py build/bench/op_overhead --baseline /tmp/main/op_overhead \\
        --pair tapegrad_chain tapegrad_chain_no_grad --rounds 6 --repetitions 3
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def base_name(run):
    """The benchmark's name without the timing suffix (/real_time, ...), arguments kept."""
    name = run["run_name"]
    for suffix in ("/real_time", "/process_time", "/manual_time"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name


def run_medians(binary, names, args):
    """Runs `binary` once; returns its command, its JSON report and {name: (median, unit)}."""
    if os.path.exists(binary):  # a file in the current directory, named without ./
        binary = os.path.abspath(binary)
    command = [binary, "--benchmark_format=json",
               f"--benchmark_repetitions={args.repetitions}",
               f"--benchmark_min_time={args.min_time}",
               # repetitions of the two sides alternate, so drifting load hits both alike
               "--benchmark_enable_random_interleaving=true",
               "--benchmark_filter=^(" + "|".join(names) + ")(/real_time)?$"] + args.extra
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        sys.stderr.write(result.stderr)
        sys.exit(f"{binary} failed with exit code {result.returncode}")
    if not result.stdout.strip():
        sys.exit(f"{binary} printed no results for {', '.join(names)}")
    report = json.loads(result.stdout)

    medians = {}
    for run in report["benchmarks"]:
        if run.get("aggregate_name") == "median":
            medians[base_name(run)] = (run[args.time], run["time_unit"])
    if len(medians) < len(names):  # a single repetition reports no aggregates
        for run in report["benchmarks"]:
            medians.setdefault(base_name(run), (run[args.time], run["time_unit"]))
    missing = [n for n in names if n not in medians]
    if missing:
        sys.exit(f"benchmarks not found in {binary}: {', '.join(missing)}")
    return command, report, medians


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("binary")
    parser.add_argument("--pair", nargs=2, action="append", metavar=("A", "B"), required=True,
                        help="benchmark A (ours) and B (the reference)")
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--min-time", default="0.5", help="seconds per repetition")
    parser.add_argument("--baseline", metavar="BINARY",
                        help="the same benchmarks built from another commit, run alternately")
    parser.add_argument("--rounds", type=int, default=4, help="with --baseline: runs of each")
    parser.add_argument("--time", choices=["real_time", "cpu_time"], default="real_time",
                        help="cpu_time is less disturbed by other processes on a shared machine")
    parser.add_argument("extra", nargs="*", help="further arguments for the binary")
    args = parser.parse_args()

    names = sorted({name for pair in args.pair for name in pair})
    if args.baseline:
        compare_builds(names, args)
        return
    command, report, medians = run_medians(args.binary, names, args)

    print(f"# {time.strftime('%Y-%m-%d')}, {cpu_model()}, {report['context'].get('num_cpus')} CPUs")
    print(f"# {' '.join(command)}; medians of {args.time}")
    print(f"{'benchmark':40s} {'median':>12s}")
    for name in names:
        value, unit = medians[name]
        print(f"{name:40s} {value:10.2f} {unit}")
    for ours, reference in args.pair:
        a, b = medians[ours][0], medians[reference][0]
        print(f"{reference} / {ours} = {b / a:.2f}x")


def compare_builds(names, args):
    """--baseline: both binaries alternately, the ratio of each benchmark across the builds."""
    ours, baseline = {n: [] for n in names}, {n: [] for n in names}
    for round_index in range(args.rounds):
        # which build goes first alternates too, so a load trend within a round hits both alike
        order = [(args.binary, ours), (args.baseline, baseline)]
        for binary, times in order if round_index % 2 == 0 else reversed(order):
            command, report, medians = run_medians(binary, names, args)
            for name in names:
                times[name].append(medians[name])
    unit = ours[names[0]][0][1]
    print(f"# {time.strftime('%Y-%m-%d')}, {cpu_model()}, {report['context'].get('num_cpus')} CPUs")
    print(f"# {args.rounds} rounds of: {' '.join(command[1:])}; medians of {args.time}")
    print(f"# this build: {args.binary}\n# baseline:   {args.baseline}")
    print(f"{'benchmark':32s} {'this build':>12s} {'baseline':>12s}  per-round baseline / this")
    for name in names:
        a = [t for t, _ in ours[name]]
        b = [t for t, _ in baseline[name]]
        ratios = [y / x for x, y in zip(a, b)]
        print(f"{name:32s} {statistics.median(a):9.2f} {unit} {statistics.median(b):9.2f} {unit}"
              f"  median {statistics.median(ratios):.3f} "
              f"({', '.join(f'{r:.3f}' for r in ratios)})")


if __name__ == "__main__":
    main()
