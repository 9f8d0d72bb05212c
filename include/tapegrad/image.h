// tapegrad/image.h — 8-bit images and PNG files (through libpng), for looking at tensors.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tapegrad/tensor.h"

namespace tg {

// The largest Image: at most 1,000,000 pixels a side (libpng's limit for reading, so every PNG
// write_png writes, read_png reads back) and 2^30 bytes of pixels (a 32768 × 32768 gray image).
// Sizes beyond either, from arguments or from a file's header, are a tg::Error before anything
// is allocated.
constexpr int64_t kMaxImageSide = 1000000;
constexpr int64_t kMaxImageBytes = int64_t(1) << 30;

struct Image {
  int width = 0, height = 0;
  int channels = 1;             // 1 gray, 2 gray + alpha, 3 RGB, 4 RGBA
  std::vector<uint8_t> pixels;  // row-major, channels interleaved

  Image() = default;
  // Throws unless the size is positive and within the limits above and channels is 1 to 4.
  Image(int width, int height, int channels, uint8_t fill = 0);
  uint8_t* pixel(int x, int y) { return &pixels[(static_cast<size_t>(y) * width + x) * channels]; }
};

// Writes `image` as an 8-bit PNG (gray, gray + alpha, RGB or RGBA by its channels). The file
// appears complete or not at all: it is written to a temporary file beside `path`, flushed to
// disk and renamed over it (see the atomic writes in docs/architecture.md).
void write_png(const std::string& path, const Image& image);
// Reads any PNG: palette, gray below 8 bits and transparency are expanded, 16-bit samples scaled
// to 8, interlaced (Adam7) images de-interlaced; channels is 1 to 4 as in the file. Throws a
// tg::Error naming the file on any problem.
Image read_png(const std::string& path);

// Tiles images into a grid with `padding` pixels between them: `images` is [n, height, width]
// with values in [0, 1] (clamped; NaN is black), any dtype, any device. n may be smaller than
// rows * columns; empty cells stay black. Each pixel becomes a scale × scale block, so small
// images (28 × 28) are large enough to look at. The grid must fit the limits above.
Image image_grid(const Tensor& images, int rows, int columns, int padding = 2, int scale = 1);

}  // namespace tg
