// tests/catch_session.h — runs Catch2 over the test cases linked into the binary
// (catch_session.cpp holds Catch2's implementation).
#pragma once

int run_catch_session(int argc, char** argv);
