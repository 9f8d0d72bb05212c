// tapegrad/image.h — 8-bit images and PNG files (through libpng), for looking at tensors.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tapegrad/tensor.h"

namespace tg {

struct Image {
  int width = 0, height = 0;
  int channels = 1;             // 1 = gray, 3 = RGB
  std::vector<uint8_t> pixels;  // row-major, channels interleaved

  Image() = default;
  Image(int width, int height, int channels, uint8_t fill = 0);
  uint8_t* pixel(int x, int y) { return &pixels[(static_cast<size_t>(y) * width + x) * channels]; }
};

// Writes `image` as a PNG. The file appears complete or not at all: it is written to a
// temporary file beside `path`, flushed to disk and renamed over it.
void write_png(const std::string& path, const Image& image);
// Reads an 8-bit gray or RGB PNG (what write_png writes). Throws naming the file on any problem.
Image read_png(const std::string& path);

// Tiles images into a grid with `padding` pixels between them: `images` is [n, height, width]
// with values in [0, 1] (clamped), any float dtype, any device. n may be smaller than
// rows * columns; empty cells stay black. Each pixel becomes a scale × scale block, so small
// images (28 × 28) are large enough to look at.
Image image_grid(const Tensor& images, int rows, int columns, int padding = 2, int scale = 1);

}  // namespace tg
