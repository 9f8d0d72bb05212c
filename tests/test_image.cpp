// tests/test_image.cpp — PNG round trips, reading PNGs of every kind libpng knows (interlaced,
// palette, 16-bit, below 8 bits), atomic writes, size limits, image grids.
#include <climits>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "file_helpers.h"
#include "helpers.h"
#include "png_helpers.h"

using namespace tg;
using tgtest::require_error;
using tgtest::write_test_png;

namespace {
// In a directory of this test run's own: other runs on the machine use the same names.
std::string temp_path(const std::string& name) {
  static const tgtest::TempDir directory;
  return directory.file(name);
}
}  // namespace

TEST_CASE("PNG round trip: gray, gray + alpha, RGB, RGBA", "[image]") {
  for (int channels : {1, 2, 3, 4}) {
    INFO(channels << " channels");
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

TEST_CASE("read_png reads interlaced, palette, 16-bit and 1-bit PNGs as 8-bit pixels", "[image]") {
  std::string path = temp_path("kinds.png");

  // Adam7: the 64 pixels of an 8x8 image arrive in seven passes.
  std::vector<std::vector<uint8_t>> rows(8, std::vector<uint8_t>(8));
  std::vector<uint8_t> expected;
  for (int y = 0; y < 8; ++y)
    for (int x = 0; x < 8; ++x) expected.push_back(rows[y][x] = static_cast<uint8_t>(y * 8 + x));
  REQUIRE(write_test_png(path, 8, 8, PNG_COLOR_TYPE_GRAY, 8, true, rows));
  Image interlaced = read_png(path);
  REQUIRE(interlaced.channels == 1);
  REQUIRE(interlaced.pixels == expected);

  // A palette with a transparent entry: RGBA.
  std::vector<png_color> palette = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}};
  REQUIRE(write_test_png(path, 3, 1, PNG_COLOR_TYPE_PALETTE, 8, false, {{2, 0, 1}}, palette,
                         {255, 0}));
  Image indexed = read_png(path);
  REQUIRE(indexed.channels == 4);
  REQUIRE(indexed.pixels ==
          std::vector<uint8_t>{0, 0, 255, 255, 255, 0, 0, 255, 0, 255, 0, 0});

  // 16-bit RGB, interlaced too: scaled to 8 bits (v·257 -> v).
  std::vector<uint8_t> wide = {10, 10, 20, 20, 30, 30, 200, 200, 250, 250, 0, 0};
  REQUIRE(write_test_png(path, 2, 1, PNG_COLOR_TYPE_RGB, 16, true, {wide}));
  Image deep = read_png(path);
  REQUIRE(deep.channels == 3);
  REQUIRE(deep.pixels == std::vector<uint8_t>{10, 20, 30, 200, 250, 0});

  // 1-bit gray: eight pixels in one byte, expanded to 0 and 255.
  REQUIRE(write_test_png(path, 8, 1, PNG_COLOR_TYPE_GRAY, 1, false, {{0xA5}}));
  Image bits = read_png(path);
  REQUIRE(bits.pixels == std::vector<uint8_t>{255, 0, 255, 0, 0, 255, 0, 255});
  std::remove(path.c_str());
}

TEST_CASE("images outside 1 to 4 channels or the size limits are errors, not overflows",
          "[image]") {
  require_error([] { Image(2, 2, 5); }, {"image", "1 to 4 channels", "2x2x5"});
  require_error([] { Image(2, 2, 0); }, {"image", "2x2x0"});
  require_error([] { Image(1000001, 1, 1); }, {"image", "larger than the limit"});
  require_error([] { Image(40000, 40000, 1); }, {"image", "40000x40000x1", "1073741824 bytes"});
  require_error([] { Image(INT_MAX, INT_MAX, 4); }, {"image", "larger than the limit"});
  // A hand-made Image whose fields disagree with the rules or with its buffer.
  std::string path = temp_path("bad.png");
  Image five;
  five.width = 2, five.height = 2, five.channels = 5;
  five.pixels.assign(20, 0);
  require_error([&] { write_png(path, five); }, {"write_png", "1 to 4 channels"});
  Image two(3, 3, 2);
  two.pixels.resize(9);  // sized for one channel
  require_error([&] { write_png(path, two); }, {"write_png", "holds 9 bytes", "3x3x2", "needs 18"});
  REQUIRE_FALSE(std::filesystem::exists(path));
}

TEST_CASE("an image_grid too large for an Image is an error naming the grid", "[image]") {
  Tensor images = zeros({8, 28, 28});
  // 8 columns of 28·10^7 pixels: 2.2·10^9, past int, once written past its buffer.
  require_error([&] { image_grid(images, 1, 8, 2, 10000000); },
                {"image_grid", "1x8 images of 28x28 at scale 10000000", "larger than an Image"});
  require_error([&] { image_grid(images, 1, INT_MAX, INT_MAX, INT_MAX); },
                {"image_grid", "more than 2^63"});
  require_error([&] { image_grid(images, INT_MAX, INT_MAX, 0, 1); }, {"image_grid", "larger"});
  require_error([&] { image_grid(zeros({1, 0, 3}), 1, 1); }, {"image_grid", "no pixels"});
  Image big = image_grid(images, 2, 4, 0, 20);  // large, within the limits
  REQUIRE(big.width == 4 * 560);
  REQUIRE(big.height == 2 * 560);
}
