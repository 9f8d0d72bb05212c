// tests/fuzz/make_seeds.cpp — writes the seed corpus of every fuzz target: small valid files of
// each kind the readers accept. The committed corpus (tests/fuzz/corpus/) came from
//   build-fuzz/tests/fuzz/fuzz_make_seeds tests/fuzz/corpus
// Seeds only need to be valid and varied, not reproducible bit for bit.
#include <filesystem>
#include <iostream>

#include "../png_helpers.h"
#include "targets.h"

using namespace tg;

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: fuzz_make_seeds OUTPUT_FOLDER\n";
    return 2;
  }
  const std::string out = argv[1];
  for (const tgfuzz::Target& target : tgfuzz::targets())
    std::filesystem::create_directories(out + "/" + target.name);
  auto at = [&](const std::string& target, const std::string& name) {
    return out + "/" + target + "/" + name;
  };

  // IDX: every element type, ranks 1 to 3 (MNIST's images are rank 3, labels rank 1).
  data::write_idx(at("read_idx", "u8_images"), tensor({0, 1, 2, 3, 250, 255, 7, 8, 9, 10, 11, 12},
                                                      {2, 2, 3}));
  data::write_idx(at("read_idx", "u8_labels"), tensor({3, 1, 4, 1, 5}));
  data::write_idx(at("read_idx", "i8"), tensor({-128, 0, 127}), data::IdxType::i8);
  data::write_idx(at("read_idx", "i16"), tensor({-300, 300, 1, 2}, {2, 2}), data::IdxType::i16);
  data::write_idx(at("read_idx", "i32"), tensor({-70000, 70000}), data::IdxType::i32);
  data::write_idx(at("read_idx", "f32"), tensor({0.5, -1.25, 3e9}), data::IdxType::f32);
  data::write_idx(at("read_idx", "f64"), tensor({0.1, -2.0}, DType::f64), data::IdxType::f64);

  // State dicts: each dtype, a scalar, an empty tensor, a rank-8 tensor.
  StateDict state;
  state.add("weights", tensor({1.5, -2.25, 3e-20, -0.0}, {2, 2}));
  state.add("f64", tensor({3.141592653589793}, DType::f64));
  state.add_integer("step", (int64_t(1) << 62) + 1);
  state.add("empty", zeros({0, 3}));
  state.add("deep", ones({1, 2, 1, 1, 2, 1, 1, 1}));
  write_state_dict(at("read_state_dict", "mixed.tgc"), state);
  StateDict one;
  one.add("w", tensor({1, 2, 3}));
  write_state_dict(at("read_state_dict", "one.tgc"), one);
  write_state_dict(at("read_state_dict", "none.tgc"), StateDict());

  // Checkpoints of the run load_checkpoint loads into: before and after an Adam step.
  save_checkpoint(at("load_checkpoint", "fresh.tgc"), tgfuzz::training_state(0));
  save_checkpoint(at("load_checkpoint", "stepped.tgc"), tgfuzz::training_state(1));

  // PNGs: what write_png writes (1 to 4 channels) and what only other programs write.
  for (int channels = 1; channels <= 4; ++channels) {
    Image image(3, 2, channels);
    for (size_t i = 0; i < image.pixels.size(); ++i) image.pixels[i] = static_cast<uint8_t>(i * 40);
    write_png(at("read_png", "channels" + std::to_string(channels) + ".png"), image);
  }
  std::vector<std::vector<uint8_t>> gray(8, std::vector<uint8_t>(8));
  for (int y = 0; y < 8; ++y)
    for (int x = 0; x < 8; ++x) gray[y][x] = static_cast<uint8_t>(y * 8 + x);
  bool ok = tgtest::write_test_png(at("read_png", "adam7.png"), 8, 8, PNG_COLOR_TYPE_GRAY, 8,
                                   true, gray);
  ok = ok && tgtest::write_test_png(at("read_png", "palette.png"), 3, 1, PNG_COLOR_TYPE_PALETTE,
                                    8, false, {{2, 0, 1}}, {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}},
                                    {255, 0});
  ok = ok && tgtest::write_test_png(at("read_png", "rgb16_adam7.png"), 2, 1, PNG_COLOR_TYPE_RGB,
                                    16, true, {{10, 10, 20, 20, 30, 30, 200, 200, 250, 250, 0, 0}});
  ok = ok && tgtest::write_test_png(at("read_png", "gray1.png"), 8, 1, PNG_COLOR_TYPE_GRAY, 1,
                                    false, {{0xA5}});
  if (!ok) {
    std::cerr << "fuzz_make_seeds: libpng could not write a seed\n";
    return 1;
  }
  std::cout << "wrote the seeds into " << out << "\n";
  return 0;
}
