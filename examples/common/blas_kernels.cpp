// examples/common/blas_kernels.cpp — see blas_kernels.h.
#include "blas_kernels.h"

#include <cblas.h>

#include <cstdlib>
#include <cstring>

namespace examples {

namespace {

// The kernels OpenBLAS would run best on this CPU, or nullptr when it has no better ones than
// what it chose. Only the cores that predate AVX2 count as a fallback: a deliberate choice
// (Haswell on Zen 4) is left alone.
const char* better_kernels(const char* chosen) {
  static const char* const kBeforeAvx2[] = {"Prescott", "Core2",    "Penryn", "Dunnington",
                                            "Nehalem",  "Atom",     "Sandybridge", "Barcelona",
                                            "Bobcat",   "Bulldozer", "Piledriver", "Steamroller",
                                            "Excavator", "Katmai",   "Coppermine", "Northwood"};
  bool old = false;
  for (const char* name : kBeforeAvx2) old = old || std::strcmp(chosen, name) == 0;
  if (!old) return nullptr;
#if defined(__x86_64__) && defined(__GNUC__)
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl"))
    return "SkylakeX";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
#endif
  return nullptr;
}

}  // namespace

std::string blas_kernels() {
  const char* core = openblas_get_corename();
  std::string text = std::string("OpenBLAS ") + core + " kernels";
  if (const char* chosen = std::getenv("OPENBLAS_CORETYPE")) {
    text += std::string(" (OPENBLAS_CORETYPE=") + chosen + ")";
  } else if (const char* better = better_kernels(core)) {
    text += std::string(" (this OpenBLAS does not know this CPU and fell back to old kernels: "
                        "OPENBLAS_CORETYPE=") +
            better + " in the environment makes its matmuls several times faster)";
  }
  return text;
}

}  // namespace examples
