// tests/test_main.cpp — main() of tapegrad_tests; every other test file only defines TEST_CASEs.
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "../src/cpu/simd.h"
#include "catch_session.h"

int main(int argc, char** argv) {
  // meson runs some areas again under TAPEGRAD_SIMD=<target> (tests/meson.build): a target this
  // CPU lacks is a skip (77), not a failure.
  if (const char* env = std::getenv("TAPEGRAD_SIMD")) {
    std::string want = env;
    for (char& c : want) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (want == "avx512") want = "avx3";
    bool known = want == "none" || want == "best" || want == "native";
    for (int64_t target : tg::cpu::simd::available_targets()) {
      std::string name = tg::cpu::simd::name_of(target);
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      known = known || name == want || (want == "scalar" && name == "emu128") ||
              (want == "emu128" && name == "scalar");
    }
    if (!known) {
      std::printf("SKIP: TAPEGRAD_SIMD=%s, a target this CPU (or build) does not have\n", env);
      return 77;
    }
  }
  return run_catch_session(argc, argv);
}
