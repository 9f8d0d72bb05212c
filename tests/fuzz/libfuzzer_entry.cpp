// tests/fuzz/libfuzzer_entry.cpp — libFuzzer's entry point for one target of targets.h, chosen
// when it is compiled (-DTG_FUZZ_TARGET=read_idx; tests/fuzz/meson.build builds one per target).
#include "targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  tgfuzz::TG_FUZZ_TARGET(data, size);
  return 0;
}
