// tests/test_main.cpp — main() of tapegrad_tests; every other test file only defines TEST_CASEs.
#include "catch_session.h"

int main(int argc, char** argv) { return run_catch_session(argc, argv); }
