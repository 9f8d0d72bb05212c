#!/usr/bin/env bash
# scripts/cuda_check.sh — every check of the CUDA backend that needs a GPU, in one go.
#
#   scripts/cuda_check.sh pack [BUILD_DIR]   # here, where it was built (default build/): strips
#                                            # the programs, adds the shared libraries they load
#                                            # (not cuBLAS: the GPU machine's CUDA has it) and
#                                            # Fashion-MNIST into .cuda-bundle/ (<= 64 MiB, with
#                                            # the source tree that travels beside it)
#   scripts/cuda_check.sh run [BUNDLE_DIR]   # on the GPU machine, from the repository's root:
#                                            # the CUDA tests, the CPU tests, the VAE on the GPU
#                                            # and on the CPU, the CUDA benchmarks and the VAE
#                                            # against PyTorch CUDA; at most 4 minutes in all;
#                                            # prints a table last, logs to $OUT (or /tmp)
#
# With this workplace's device tool, after `pack`:
#   run(command="scripts/cuda_check.sh run", carry=[".cuda-bundle"], timeout_s=300)
set -uo pipefail
cd "$(dirname "$0")/.."

bundle_default=.cuda-bundle
programs=(tests/tapegrad_cuda_tests tests/tapegrad_tests examples/vae/vae bench/cuda_bench)
data_default=/usr/share/datasets/fashion-mnist

pack() {
  local build=${1:-build} out=$bundle_default
  ninja -C "$build" "${programs[@]}" || { echo "cuda_check: the build failed"; exit 1; }
  [ -f "$build/cuda_backend.o" ] || { echo "cuda_check: $build has no CUDA backend (no nvcc?)"; exit 1; }
  rm -rf "$out" && mkdir -p "$out/stage/bin" "$out/stage/lib" "$out/data"
  for p in "${programs[@]}"; do strip --strip-unneeded -o "$out/stage/bin/$(basename "$p")" "$build/$p"; done
  # The shared libraries the programs load that a GPU machine's image may lack (OpenBLAS and
  # its Fortran runtime, libpng, PLplot's), not glibc's own (libmvec included), not libstdc++,
  # libgcc_s or zlib (every image has newer ones, and older copies would shadow them), not cuBLAS.
  ldd "$out"/stage/bin/* | awk '/=> \// {print $3}' | sort -u |
    grep -v -E '/(libc|libm|libmvec|libdl|librt|libpthread|libresolv|libutil|ld-linux[^/]*|libstdc\+\+|libgcc_s|libz)\.so|libcublas' |
    while read -r lib; do cp -L "$lib" "$out/stage/lib/"; done
  XZ_OPT=-T0 tar -C "$out/stage" -cJf "$out/programs.tar.xz" bin lib && rm -rf "$out/stage"
  cp "$data_default"/*-ubyte.gz "$out/data/"
  local bundle_kib tree_kib
  bundle_kib=$(du -sk "$out" | cut -f1)
  tree_kib=$(git ls-files -z | xargs -0 du -ck 2>/dev/null | tail -1 | cut -f1)
  echo "cuda_check: $out is $((bundle_kib / 1024)) MiB, the tracked tree $((tree_kib / 1024)) MiB"
  if [ $((bundle_kib + tree_kib)) -gt $((63 * 1024)) ]; then
    echo "cuda_check: over the 64 MiB that may travel"; exit 1
  fi
  echo 'then: run(command="scripts/cuda_check.sh run", carry=[".cuda-bundle"], timeout_s=300)'
}

# The directory holding libcublas.so.13 on this machine.
find_cublas() {
  local dir
  dir=$(ldconfig -p 2>/dev/null | awk '/libcublas\.so\.13 / {print $NF; exit}')
  [ -n "$dir" ] && { dirname "$dir"; return; }
  for dir in /usr/local/cuda/lib64 /usr/local/cuda-*/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
    [ -e "$dir/libcublas.so.13" ] && { echo "$dir"; return; }
  done
  python3 - <<'PY' 2>/dev/null
import glob, os, sys
for p in sys.path:
    for hit in glob.glob(os.path.join(p, "nvidia", "cu*", "lib", "libcublas.so.13")) + \
               glob.glob(os.path.join(p, "nvidia", "cublas", "lib", "libcublas.so.13")):
        print(os.path.dirname(hit)); sys.exit()
PY
}

run() {
  local bundle=${1:-$bundle_default}
  local start=$SECONDS budget=230  # seconds for everything, under the 4 minutes
  local work logs
  work=$(mktemp -d /tmp/tapegrad-cuda.XXXXXX)
  logs=${OUT:-$work/logs}
  mkdir -p "$logs"
  # The unpacked programs go when the script ends; the logs stay. (Expanded now: $work is local.)
  trap "rm -rf '$work/bin' '$work/lib' '$work/vae_gpu' '$work/vae_cpu'" EXIT
  tar -C "$work" -xJf "$bundle/programs.tar.xz" || { echo "cuda_check: no bundle at $bundle (run pack first)"; exit 1; }
  # OpenBLAS may not recognise a new CPU and fall back to its SSE3 (Prescott) kernels, which makes
  # the CPU's VAE run several times slower; any AVX2 CPU runs the Haswell ones.
  if [ -z "${OPENBLAS_CORETYPE:-}" ] && grep -q -w avx2 /proc/cpuinfo 2>/dev/null; then
    export OPENBLAS_CORETYPE=Haswell
  fi
  local cublas
  cublas=$(find_cublas)
  echo "cuda_check: cuBLAS from ${cublas:-(not found: the programs will say so)}"
  # Our programs see the bundled libraries through a wrapper each; nothing else (python3 and
  # PyTorch keep their own libraries).
  local paths="$work/lib${cublas:+:$cublas}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  for p in "$work"/bin/*; do
    mv "$p" "$p.bin"
    printf '#!/bin/sh\nLD_LIBRARY_PATH="%s" exec "%s.bin" "$@"\n' "$paths" "$p" > "$p"
    chmod +x "$p"
  done
  if command -v nvidia-smi > /dev/null; then nvidia-smi -L 2>&1 | head -4; fi
  local -A status
  # step NAME SECONDS COMMAND...: runs with a time limit that never passes the overall budget.
  step() {
    local name=$1 limit=$2
    shift 2
    local left=$((budget - (SECONDS - start)))
    [ "$limit" -gt "$left" ] && limit=$left
    if [ "$limit" -le 5 ]; then status[$name]="not run (out of time)"; return; fi
    echo "=== $name (at most ${limit}s) ==="
    local t0=$SECONDS
    timeout "$limit" "$@" > "$logs/$name.log" 2>&1
    local code=$?
    tail -n 25 "$logs/$name.log"
    case $code in
      0) status[$name]="ok ($((SECONDS - t0)) s)" ;;
      124) status[$name]="TIMEOUT after ${limit}s" ;;
      77) status[$name]="skipped: $(head -1 "$logs/$name.log" | cut -c1-100)" ;;
      *) status[$name]="FAILED (exit $code)" ;;
    esac
  }
  step cuda_tests 120 "$work/bin/tapegrad_cuda_tests"
  step vae_gpu 60 "$work/bin/vae" --device cuda --epochs 10 --data "$bundle/data" --out "$work/vae_gpu"
  step bench 40 "$work/bin/cuda_bench"
  step vae_cpu 70 "$work/bin/vae" --device cpu --epochs 10 --data "$bundle/data" --out "$work/vae_cpu"
  step pytorch 80 python3 bench/vae_vs_pytorch.py --device cuda --epochs 3 --data "$bundle/data" \
    --tapegrad "$work/bin/vae"
  # Without [fuzz_inputs]: those replay tests/fuzz/ from the path of the build's source tree.
  step cpu_tests 30 "$work/bin/tapegrad_tests" "~[fuzz_inputs]"

  # The table: what each step showed against what the issue asks.
  python3 - "$logs" "${status[cuda_tests]}" "${status[vae_gpu]}" "${status[bench]}" \
    "${status[vae_cpu]}" "${status[pytorch]}" "${status[cpu_tests]}" <<'PY' | tee "$logs/summary.txt"
import os, re, sys
logs = sys.argv[1]
names = ["cuda_tests", "vae_gpu", "bench", "vae_cpu", "pytorch", "cpu_tests"]
status = dict(zip(names, sys.argv[2:]))
def text(name):
    try:
        return open(os.path.join(logs, name + ".log"), errors="replace").read()
    except OSError:
        return ""
rows = []
def row(check, result, target=""):
    rows.append((check, result, target))
for name in names:
    row(f"step {name}", status[name])
m = re.search(r"(All tests passed|test cases:.*)", text("cuda_tests"))
row("CUDA tests", m.group(1) if m else "no Catch2 summary", "all pass")
m = re.search(r"backend.h coverage: (\d+ of \d+)", text("cuda_tests"))
row("backend.h reached by the CUDA tests", m.group(1) if m else "no coverage line", "all")
m = re.search(r"(All tests passed|test cases:.*)", text("cpu_tests"))
row("CPU tests on the GPU machine", m.group(1) if m else "no Catch2 summary", "all pass")
epoch = re.compile(r"epoch (\d+)/\d+\s+train loss ([\d.]+)\s+test loss ([\d.]+)\s+([\d.]+) s")
gpu = epoch.findall(text("vae_gpu")); cpu = epoch.findall(text("vae_cpu"))
if gpu and cpu:
    g, c = float(gpu[-1][2]), float(cpu[-1][2])
    row(f"VAE test loss after {gpu[-1][0]} epochs, GPU vs CPU", f"{g:.2f} vs {c:.2f} ({100 * abs(g - c) / c:.2f}%)", "<= 0.5%")
if gpu:
    times = [float(r[3]) for r in gpu[1:]] or [float(gpu[0][3])]
    row("VAE training epoch on the GPU (mean of epochs 2+)", f"{sum(times) / len(times):.3f} s", "<= 0.25 s")
m = re.search(r"(\d+) new system allocations in the steady state", text("vae_gpu"))
if m: row("cudaMalloc calls in the steady state (VAE)", m.group(1), "0")
m = re.search(r"mean training epoch: tapegrad ([\d.]+) s, pytorch ([\d.]+) s", text("pytorch"))
if m: row("VAE epoch vs PyTorch CUDA", f"{m.group(1)} s vs {m.group(2)} s ({float(m.group(2)) / float(m.group(1)):.2f}x)", ">= 3x faster")
for line in text("bench").splitlines():
    m = re.match(r"(gemm \S+ f32) \(ms; TFLOP/s\)\s+(\S+ \(\S+\))\s+(\S+ \(\S+\)) cuBLAS\s+(\S+)", line)
    if m: row(f"{m.group(1)}: engine / cuBLAS time", f"{m.group(4)} ({m.group(2)} vs {m.group(3)} ms)", "<= 1.05")
    m = re.match(r"(log_softmax \+ kl_div forward|kl_divergence_logits forward) \(GB/s of [^)]*\)\s+(\d+).*copy\s+([\d.]+)$", line)
    if m: row(f"{m.group(1)}: share of copy bandwidth", f"{m.group(3)} ({m.group(2)} GB/s)", ">= 0.70")
    m = re.match(r"(add of 1 element, .*) \(us per op\)\s+([\d.]+)", line)
    if m: row(m.group(1), f"{m.group(2)} us/op")
width = max(len(r[0]) for r in rows)
print()
print(f"{'check':<{width}}  {'result':<46}  target")
for check, result, target in rows:
    print(f"{check:<{width}}  {result:<46}  {target}")
PY
  echo "logs: $logs"
}

case "${1:-}" in
  pack) shift; pack "$@" ;;
  run) shift; run "$@" ;;
  *) sed -n '2,17p' "$0"; exit 2 ;;
esac
