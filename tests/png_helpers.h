// tests/png_helpers.h — PNG files of any format written with libpng's own writer, for the PNG
// reader's tests and the fuzzing seed corpus (the kinds write_png never writes: interlaced,
// palette, 16-bit, below 8 bits).
#pragma once

#include <png.h>

#include <cstdio>
#include <string>
#include <vector>

namespace tgtest {

// `rows` are the stored bytes of each row: samples packed as `depth` says, 16-bit big-endian.
inline bool write_test_png(const std::string& path, int width, int height, int color_type,
                           int depth, bool interlaced, const std::vector<std::vector<uint8_t>>& rows,
                           const std::vector<png_color>& palette = {},
                           const std::vector<png_byte>& transparency = {}) {
  FILE* file = std::fopen(path.c_str(), "wb");
  if (!file) return false;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  std::vector<png_bytep> pointers;
  for (const auto& row : rows) pointers.push_back(const_cast<png_bytep>(row.data()));
  volatile bool ok = false;  // set after setjmp
  if (!setjmp(png_jmpbuf(png))) {
    png_init_io(png, file);
    png_set_IHDR(png, info, width, height, depth, color_type,
                 interlaced ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (!palette.empty())
      png_set_PLTE(png, info, palette.data(), static_cast<int>(palette.size()));
    if (!transparency.empty())
      png_set_tRNS(png, info, transparency.data(), static_cast<int>(transparency.size()), nullptr);
    png_write_info(png, info);
    if (interlaced) png_set_interlace_handling(png);
    png_write_image(png, pointers.data());
    png_write_end(png, nullptr);
    ok = true;
  }
  png_destroy_write_struct(&png, &info);
  std::fclose(file);
  return ok;
}

}  // namespace tgtest
