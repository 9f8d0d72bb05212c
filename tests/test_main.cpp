// tests/test_main.cpp — Catch2's main(); every other test file only defines TEST_CASEs.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
