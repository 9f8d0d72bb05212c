// tests/test_image.cpp — PNG round trips, atomic writes, image grids.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>

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

TEST_CASE("a PNG header claiming more pixels than the file can hold is refused", "[image]") {
  // A valid 1x1 PNG whose IHDR is rewritten to 1,000,000 x 1,000,000 (libpng's default limit),
  // with a correct chunk CRC: the reader must refuse it before allocating a terabyte.
  std::string path = temp_path("huge.png");
  write_png(path, Image(1, 1, 1));
  std::vector<uint8_t> bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  REQUIRE(std::string(bytes.begin() + 12, bytes.begin() + 16) == "IHDR");
  for (int field : {16, 20})  // width, height: big-endian u32
    for (int k = 0; k < 4; ++k) bytes[field + k] = static_cast<uint8_t>(1000000u >> (24 - 8 * k));
  uint32_t crc = 0xffffffffu;  // CRC-32 of the chunk type and data, bytes 12..28
  for (int i = 12; i < 29; ++i) {
    crc ^= bytes[i];
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
  }
  crc ^= 0xffffffffu;
  for (int k = 0; k < 4; ++k) bytes[29 + k] = static_cast<uint8_t>(crc >> (24 - 8 * k));
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  require_error([&] { read_png(path); }, {"read_png", path, "1000000x1000000", "corrupt"});
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
