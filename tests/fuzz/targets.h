// tests/fuzz/targets.h — the fuzz targets: each hands arbitrary bytes to public readers of
// tapegrad as a file, and lets nothing but a tg::Error out. libFuzzer drives them
// (libfuzzer_entry.cpp, built with -Dfuzz=enabled; docs/fuzzing.md), and the ordinary test
// suite replays the seed corpus and every crash ever found through the same functions
// (tests/test_fuzz_inputs.cpp), so a fixed crash stays fixed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "tapegrad/tapegrad.h"

namespace tgfuzz {

// read_idx of the bytes as a raw file (as f32, f64 and i64), as a ".gz" file, and gzip-compressed
// (so the IDX parser behind a valid gzip stream gets fuzzed too).
void read_idx(const uint8_t* data, size_t size);
// read_state_dict of the bytes, and of the bytes with their length field and CRC-32 repaired
// (so that mutations reach the entry parser instead of stopping at the checksum).
void read_state_dict(const uint8_t* data, size_t size);
// load_checkpoint into a small model + Adam + two generators (training_state()), raw and repaired.
void load_checkpoint(const uint8_t* data, size_t size);
// read_png of the bytes, and of the bytes with the signature and every chunk CRC repaired.
void read_png(const uint8_t* data, size_t size);

struct Target {
  std::string name;  // also the folder of its seeds and regression inputs
  void (*run)(const uint8_t* data, size_t size);
};
const std::vector<Target>& targets();

// The training run load_checkpoint loads into: MLP 3-4-2, Adam, generators "data" and "noise".
// After `steps` Adam steps its checkpoint has optimizer moments (the seeds use 0 and 1).
tg::TrainingState& training_state(int steps = 0);

}  // namespace tgfuzz
