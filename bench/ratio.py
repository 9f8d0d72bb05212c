#!/usr/bin/python3
"""Runs a Google Benchmark binary once and prints the ratio of benchmark pairs.

Both sides of every pair run in the same process, their repetitions interleaved, so machine
noise hits them alike: absolute times drift between runs on these machines, ratios hold.

    /usr/bin/python3 bench/ratio.py build/bench/op_overhead \\
        --pair tapegrad_chain libtorch_chain --repetitions 5

For each pair (A, B) it prints the median real time of each and B / A, i.e. how many times
faster A is than B.
"""
import argparse
import json
import platform
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


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("binary")
    parser.add_argument("--pair", nargs=2, action="append", metavar=("A", "B"), required=True,
                        help="benchmark A (ours) and B (the reference)")
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--min-time", default="0.5", help="seconds per repetition")
    parser.add_argument("extra", nargs="*", help="further arguments for the binary")
    args = parser.parse_args()

    names = sorted({name for pair in args.pair for name in pair})
    command = [args.binary, "--benchmark_format=json",
               f"--benchmark_repetitions={args.repetitions}",
               f"--benchmark_min_time={args.min_time}",
               # repetitions of the two sides alternate, so drifting load hits both alike
               "--benchmark_enable_random_interleaving=true",
               "--benchmark_filter=^(" + "|".join(names) + ")(/real_time)?$"] + args.extra
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        sys.stderr.write(result.stderr)
        sys.exit(f"{args.binary} failed with exit code {result.returncode}")
    if not result.stdout.strip():
        sys.exit(f"{args.binary} printed no results for {', '.join(names)}")
    report = json.loads(result.stdout)

    medians = {}
    for run in report["benchmarks"]:
        if run.get("aggregate_name") == "median":
            medians[base_name(run)] = (run["real_time"], run["time_unit"])
    if len(medians) < len(names):  # a single repetition reports no aggregates
        for run in report["benchmarks"]:
            medians.setdefault(base_name(run), (run["real_time"], run["time_unit"]))
    missing = [n for n in names if n not in medians]
    if missing:
        sys.exit(f"benchmarks not found in {args.binary}: {', '.join(missing)}")

    print(f"# {time.strftime('%Y-%m-%d')}, {cpu_model()}, {report['context'].get('num_cpus')} CPUs")
    print(f"# {' '.join(command)}")
    print(f"{'benchmark':40s} {'median':>12s}")
    for name in names:
        value, unit = medians[name]
        print(f"{name:40s} {value:10.2f} {unit}")
    for ours, reference in args.pair:
        a, b = medians[ours][0], medians[reference][0]
        print(f"{reference} / {ours} = {b / a:.2f}x")


if __name__ == "__main__":
    main()
