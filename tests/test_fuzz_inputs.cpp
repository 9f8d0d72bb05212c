// tests/test_fuzz_inputs.cpp — replays the fuzz targets' seed corpus and every input that ever
// crashed one of them (tests/fuzz/regressions/<target>/) through the same target code libFuzzer
// runs (tests/fuzz/targets.h): nothing but a tg::Error may come out, and under the sanitizer
// build no memory error or undefined behaviour. See docs/fuzzing.md for adding a new crash.
#include <algorithm>
#include <filesystem>

#include "file_helpers.h"
#include "fuzz/targets.h"
#include "helpers.h"

namespace {

std::vector<std::string> files_in(const std::string& folder) {
  std::vector<std::string> files;
  if (std::filesystem::is_directory(folder))
    for (const auto& entry : std::filesystem::directory_iterator(folder))
      if (entry.is_regular_file()) files.push_back(entry.path().string());
  std::sort(files.begin(), files.end());
  return files;
}

void replay(const tgfuzz::Target& target, const std::string& file) {
  INFO(target.name << " on " << file);
  std::vector<uint8_t> bytes = tgtest::read_bytes(file);
  REQUIRE_NOTHROW(target.run(bytes.data(), bytes.size()));
}

}  // namespace

TEST_CASE("every fuzz target's seeds go through it with nothing but tg::Errors", "[fuzz_inputs]") {
  for (const tgfuzz::Target& target : tgfuzz::targets()) {
    std::vector<std::string> seeds = files_in(std::string(TG_FUZZ_DIR) + "/corpus/" + target.name);
    INFO(target.name);
    REQUIRE(seeds.size() >= 2);
    for (const std::string& file : seeds) replay(target, file);
  }
}

TEST_CASE("every input that ever crashed a fuzz target is now refused cleanly", "[fuzz_inputs]") {
  size_t count = 0;
  for (const tgfuzz::Target& target : tgfuzz::targets())
    for (const std::string& file :
         files_in(std::string(TG_FUZZ_DIR) + "/regressions/" + target.name)) {
      replay(target, file);
      ++count;
    }
  REQUIRE(count >= 1);
}
