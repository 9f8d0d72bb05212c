// tests/catch_session.cpp — Catch2's implementation, compiled once for both test binaries, and
// the call their main()s make (tapegrad_tests: test_main.cpp; tapegrad_cuda_tests: test_cuda.cpp,
// which first checks for a GPU).
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "catch_session.h"

int run_catch_session(int argc, char** argv) { return Catch::Session().run(argc, argv); }
