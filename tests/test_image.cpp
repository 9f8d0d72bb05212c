// tests/test_image.cpp — PNG round trips, atomic writes, image grids.
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "helpers.h"

using namespace tg;
using tgtest::require_error;

namespace {
std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("tapegrad_test_" + name)).string();
}
}  // namespace

TEST_CASE("PNG round trip, gray and RGB", "[image]") {
  for (int channels : {1, 3}) {
    Image image(5, 3, channels);
    for (size_t i = 0; i < image.pixels.size(); ++i) image.pixels[i] = static_cast<uint8_t>(i * 7);
    std::string path = temp_path("roundtrip.png");
    write_png(path, image);
    Image back = read_png(path);
    REQUIRE(back.width == 5);
    REQUIRE(back.height == 3);
    REQUIRE(back.channels == channels);
    REQUIRE(back.pixels == image.pixels);
    std::remove(path.c_str());
  }
}

TEST_CASE("a failed PNG write leaves the old file and no temporary", "[image]") {
  std::string path = temp_path("keep.png");
  Image first(2, 2, 1, 10);
  write_png(path, first);
  Image broken(2, 2, 1);
  broken.pixels.resize(3);  // inconsistent buffer: refused before anything is written
  require_error([&] { write_png(path, broken); }, {"write_png", "2x2x1"});
  REQUIRE(read_png(path).pixels == first.pixels);
  require_error([] { write_png("/nonexistent-dir/x.png", Image(1, 1, 1)); },
                {"write_png", "cannot create", "/nonexistent-dir/x.png"});
  std::remove(path.c_str());
}

TEST_CASE("reading a file that is not a PNG is an error naming it", "[image]") {
  std::string path = temp_path("not.png");
  std::ofstream(path) << "definitely not a png";
  require_error([&] { read_png(path); }, {"read_png", path, "not a PNG"});
  std::ofstream(path, std::ios::binary) << "\x89PNG\r\n\x1a\n" << "truncated";
  require_error([&] { read_png(path); }, {"read_png", path});
  require_error([] { read_png("/nonexistent.png"); }, {"read_png", "cannot open"});
  std::remove(path.c_str());
}

TEST_CASE("image_grid tiles images with padding and clamps values", "[image]") {
  Tensor images = zeros({3, 2, 2});
  images.set({0, 0, 0}, 1.0);
  images.set({1, 1, 1}, 0.5);
  images.set({2, 0, 1}, 7.0);  // clamped to 1
  Image grid = image_grid(images, 2, 2, 1);
  REQUIRE(grid.width == 2 * 2 + 3);
  REQUIRE(grid.height == 2 * 2 + 3);
  REQUIRE(*grid.pixel(1, 1) == 255);          // image 0, (0, 0)
  REQUIRE(*grid.pixel(1 + 3 + 1, 1 + 1) == 128);  // image 1, (1, 1)
  REQUIRE(*grid.pixel(1 + 1, 1 + 3) == 255);  // image 2 (second row), (0, 1)
  REQUIRE(*grid.pixel(0, 0) == 0);            // padding
  Image big = image_grid(images, 2, 2, 1, 3);  // every pixel a 3 × 3 block
  REQUIRE(big.width == 2 * 6 + 3);
  REQUIRE(*big.pixel(1, 1) == 255);
  REQUIRE(*big.pixel(3, 3) == 255);
  REQUIRE(*big.pixel(4, 4) == 0);
  require_error([&] { image_grid(images, 1, 2); }, {"image_grid", "3 images", "1x2"});
  require_error([] { image_grid(zeros({4, 4}), 1, 1); }, {"image_grid", "[n, height, width]"});
}
