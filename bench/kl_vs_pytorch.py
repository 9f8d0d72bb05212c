#!/usr/bin/python3
"""Fused log_softmax + kl_div, forward and backward: tapegrad against PyTorch CPU, in one run.

    loss = kl_div(log_softmax(x, -1), target, reduction='batchmean')     x, target: float32

Runs bench/kl_fused (Google Benchmark: tapegrad's fused primitives, and the same loss as a
chain of tapegrad's small ops), then PyTorch 1.13 (Debian python3-torch, run with /usr/bin/python3)
doing F.kl_div(F.log_softmax(x, -1), target, reduction='batchmean') + backward on the same shapes,
with its default thread count, with torch.set_num_threads(os.cpu_count()) and with
torch.set_num_threads(1) (settings that coincide are run once).

The measurement runs in --rounds rounds; each round times every configuration once (tapegrad,
then each PyTorch setting, in a fresh process), so that load from other processes on a shared
machine hits all sides alike. It prints the median time of each configuration over the rounds
and the median over the rounds of each round's ratio PyTorch / tapegrad.

tapegrad runs with its default thread count (all cores: its kernels split tensors of >= 32k
elements over the threads) and, as tapegrad_fused_1t, on one thread; each PyTorch setting is
compared with tapegrad on the same number of threads (1 thread with tapegrad_fused_1t, more
with tapegrad_fused). The script prints the SIMD target tapegrad's kernels ran on
(TAPEGRAD_SIMD=avx2 forces one) and the achieved bandwidth of the fused path (the 9 arrays its
kernels must move, see bench/kl_fused.cpp) against memcpy's in the same run.

    /usr/bin/python3 bench/kl_vs_pytorch.py [--binary build/bench/kl_fused] [--rounds 5] [--min-time 0.3]
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

SHAPES = [(128, 10), (4096, 1000)]


def run_tapegrad(binary, min_time, repetitions):
    command = [binary, "--benchmark_format=json", f"--benchmark_min_time={min_time}"]
    if repetitions > 1:
        command += [f"--benchmark_repetitions={repetitions}", "--benchmark_report_aggregates_only=true"]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    times = {}
    report = json.loads(output)
    times["context"] = report["context"]
    for entry in report["benchmarks"]:
        if repetitions > 1 and entry.get("aggregate_name") != "median":
            continue
        name, rows, classes = entry["run_name"].split("/")
        scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[entry["time_unit"]]
        times[(name, int(rows), int(classes))] = entry["real_time"] * scale
        # Google Benchmark's bytes_per_second divides by the calling thread's CPU time; divide by
        # the wall time instead (the threads' work counts once)
        bytes_per_iteration = entry.get("bytes_per_second", 0.0) * entry["cpu_time"] * scale
        times[("bytes", name, int(rows), int(classes))] = bytes_per_iteration / (entry["real_time"] * scale)
    return times


def run_pytorch(threads, min_time, repetitions):
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    times = {}
    for rows, classes in SHAPES:
        generator = torch.Generator().manual_seed(1234)
        x = (torch.randn(rows, classes, generator=generator) * 2).requires_grad_()
        target = F.softmax(torch.randn(rows, classes, generator=generator), dim=-1)

        def step():
            loss = F.kl_div(F.log_softmax(x, dim=-1), target, reduction="batchmean")
            loss.backward()
            x.grad = None

        for _ in range(10):
            step()
        # iterations per repetition: enough for min_time seconds
        start = time.perf_counter()
        step()
        once = time.perf_counter() - start
        iterations = max(5, int(min_time / max(once, 1e-7)))
        samples = []
        for _ in range(repetitions):
            start = time.perf_counter()
            for _ in range(iterations):
                step()
            samples.append((time.perf_counter() - start) / iterations)
        times[(rows, classes)] = statistics.median(samples)
    return times


def pytorch_in_subprocess(threads, min_time, repetitions):
    """Each thread setting in a fresh interpreter: torch's thread pool is fixed once it starts."""
    code = (f"import json, sys; sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r}); "
            f"import kl_vs_pytorch as b; "
            f"print(json.dumps({{f'{{r}}x{{c}}': t for (r, c), t in "
            f"b.run_pytorch({threads}, {min_time}, {repetitions}).items()}}))")
    output = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    parsed = json.loads(output.strip().splitlines()[-1])
    return {tuple(int(v) for v in key.split("x")): value for key, value in parsed.items()}


def microseconds(seconds):
    return f"{seconds * 1e6:10.1f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    here = os.path.dirname(os.path.abspath(__file__))
    parser.add_argument("--binary", default=os.path.join(here, "..", "build", "bench", "kl_fused"))
    parser.add_argument("--min-time", type=float, default=0.3, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    import torch

    default_threads = torch.get_num_threads()
    settings = []  # (label, threads), each thread count once
    for label, threads in [("default", default_threads), ("all cores", os.cpu_count()), ("1 thread", 1)]:
        if all(threads != t for _, t in settings):
            settings.append((label, threads))
    rounds = []  # per round: (tapegrad times, [torch times per setting])
    for _ in range(args.rounds):
        tapegrad = run_tapegrad(args.binary, args.min_time, 1)
        torch_times = [pytorch_in_subprocess(threads, args.min_time, 1) for _, threads in settings]
        rounds.append((tapegrad, torch_times))

    def median_tapegrad(name, shape):
        return statistics.median(r[0][(name,) + shape] for r in rounds)

    def median_torch(k, shape):
        return statistics.median(r[1][k][shape] for r in rounds)

    def tapegrad_name(k):
        return "tapegrad_fused_1t" if settings[k][1] == 1 else "tapegrad_fused"

    def median_ratio(k, shape):
        return statistics.median(r[1][k][shape] / r[0][(tapegrad_name(k),) + shape] for r in rounds)

    def median_gbs(name, shape):
        return statistics.median(r[0][("bytes", name) + shape] for r in rounds) / 1e9

    context = rounds[0][0]["context"]
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs; torch {torch.__version__} "
          f"(its default: {default_threads} thread{'s' if default_threads > 1 else ''}); "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"tapegrad: SIMD target {context.get('simd_target', '?')}, "
          f"{context.get('kernel_threads', '?')} kernel threads by default")
    print(f"median over {args.rounds} interleaved rounds of the time of one forward+backward, in microseconds;")
    print("ratio = PyTorch time / tapegrad fused time on the same thread count, per round, median over the rounds")
    header = f"{'shape':>10} {'tg fused':>10} {'tg 1T':>10} {'tg chain':>10}"
    for label, threads in settings:
        header += f" {f'torch {threads}T':>10}"
    for label, threads in settings:
        header += f" {f'ratio {threads}T':>9}"
    print(header + f" {'chain/fused':>12}")
    for shape in SHAPES:
        fused = median_tapegrad("tapegrad_fused", shape)
        fused_1t = median_tapegrad("tapegrad_fused_1t", shape)
        chain = median_tapegrad("tapegrad_chain", shape)
        line = f"{f'{shape[0]}x{shape[1]}':>10} {microseconds(fused)} {microseconds(fused_1t)} {microseconds(chain)}"
        for k in range(len(settings)):
            line += f" {microseconds(median_torch(k, shape))}"
        for k in range(len(settings)):
            line += f" {median_ratio(k, shape):8.2f}x"
        chain_ratio = statistics.median(r[0][("tapegrad_chain",) + shape] / r[0][("tapegrad_fused",) + shape]
                                        for r in rounds)
        print(line + f" {chain_ratio:11.2f}x")
    print("thread settings: " + ", ".join(f"torch {t}T = {label}" for label, t in settings) +
          f"; tg fused = tapegrad on {context.get('kernel_threads', '?')} threads, tg 1T on one")
    for shape in SHAPES:
        print(f"{shape[0]}x{shape[1]}: fused path {median_gbs('tapegrad_fused', shape):.1f} GB/s "
              f"({median_gbs('tapegrad_fused_1t', shape):.1f} GB/s on 1 thread), "
              f"memcpy {median_gbs('memcpy_x', shape):.1f} GB/s")


if __name__ == "__main__":
    main()
