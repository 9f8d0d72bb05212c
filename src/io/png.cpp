// src/io/png.cpp — PNG reading and writing with libpng, and tiling tensors into image grids.
#include <png.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "tapegrad/error.h"
#include "tapegrad/image.h"
#include "atomic_file.h"
#include "deflate_limit.h"

namespace tg {

Image::Image(int width_, int height_, int channels_, uint8_t fill)
    : width(width_), height(height_), channels(channels_) {
  check(width > 0 && height > 0 && (channels == 1 || channels == 3), "image",
        "expected a positive size and 1 or 3 channels, got ", width, "x", height, "x", channels);
  pixels.assign(static_cast<size_t>(width) * height * channels, fill);
}

namespace {

// libpng reports errors through a callback that must not return. Throwing a C++ exception
// through libpng's C frames is not safe, so the callback stores the message and longjmps back to
// the setjmp in one of the two small functions below; they hold no objects with destructors, and
// their callers turn a `false` into a tg::Error.
struct PngContext {
  char message[256] = "unknown libpng error";
};

void on_png_error(png_structp png, png_const_charp message) {
  auto* context = static_cast<PngContext*>(png_get_error_ptr(png));
  std::snprintf(context->message, sizeof(context->message), "%s", message);
  png_longjmp(png, 1);
}
void on_png_warning(png_structp, png_const_charp) {}

bool encode_png(FILE* file, const Image& image, PngContext* context) {
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, context, on_png_error,
                                            on_png_warning);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (!png || !info) {
    png_destroy_write_struct(&png, nullptr);
    return false;
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    return false;
  }
  png_init_io(png, file);
  png_set_IHDR(png, info, image.width, image.height, 8,
               image.channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  const size_t row_bytes = static_cast<size_t>(image.width) * image.channels;
  for (int y = 0; y < image.height; ++y) png_write_row(png, &image.pixels[y * row_bytes]);
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return true;
}

// Reads the header into *width/height/channels, then the rows. The rows are refused before
// anything is allocated for them when they could not fit, compressed, in `file_bytes`.
bool decode_png(FILE* file, uint64_t file_bytes, int* width, int* height, int* channels,
                std::vector<uint8_t>* pixels, PngContext* context) {
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, context, on_png_error,
                                           on_png_warning);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (!png || !info) {
    png_destroy_read_struct(&png, nullptr, nullptr);
    return false;
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    return false;
  }
  png_init_io(png, file);
  png_set_sig_bytes(png, 8);
  png_read_info(png, info);
  int color = png_get_color_type(png, info), depth = png_get_bit_depth(png, info);
  if (depth != 8 || (color != PNG_COLOR_TYPE_GRAY && color != PNG_COLOR_TYPE_RGB)) {
    std::snprintf(context->message, sizeof(context->message),
                  "only 8-bit gray or RGB images are supported");
    png_destroy_read_struct(&png, &info, nullptr);
    return false;
  }
  *width = static_cast<int>(png_get_image_width(png, info));
  *height = static_cast<int>(png_get_image_height(png, info));
  *channels = color == PNG_COLOR_TYPE_GRAY ? 1 : 3;
  // Each row is a filter byte and the pixels, deflated into the file's IDAT chunks.
  const uint64_t raw_bytes = static_cast<uint64_t>(*height) * (1 + uint64_t(*width) * *channels);
  if (raw_bytes > file_bytes * kMaxDeflateRatio) {
    std::snprintf(context->message, sizeof(context->message),
                  "the header says %dx%d pixels, more than a %llu-byte file can hold; the file is "
                  "corrupt", *width, *height, static_cast<unsigned long long>(file_bytes));
    png_destroy_read_struct(&png, &info, nullptr);
    return false;
  }
  pixels->resize(static_cast<size_t>(*width) * *height * *channels);
  const size_t row_bytes = static_cast<size_t>(*width) * *channels;
  for (int y = 0; y < *height; ++y) png_read_row(png, pixels->data() + y * row_bytes, nullptr);
  png_read_end(png, nullptr);
  png_destroy_read_struct(&png, &info, nullptr);
  return true;
}

}  // namespace

void write_png(const std::string& path, const Image& image) {
  check(image.width > 0 && image.height > 0 &&
            image.pixels.size() == static_cast<size_t>(image.width) * image.height * image.channels,
        "write_png", "pixel buffer does not match ", image.width, "x", image.height, "x",
        image.channels);
  AtomicFile file(path, "write_png");
  PngContext context;
  check(encode_png(file.stream(), image, &context), "write_png", path, ": ", context.message);
  file.commit();
}

Image read_png(const std::string& path) {
  std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "rb"), std::fclose);
  check(file != nullptr, "read_png", "cannot open ", path);
  png_byte signature[8];
  check(std::fread(signature, 1, 8, file.get()) == 8 && png_sig_cmp(signature, 0, 8) == 0,
        "read_png", path, " is not a PNG file");
  std::error_code error;
  const uint64_t file_bytes = std::filesystem::file_size(path, error);
  check(!error, "read_png", "cannot read the size of ", path, ": ", error.message());
  Image image;
  PngContext context;
  check(decode_png(file.get(), file_bytes, &image.width, &image.height, &image.channels,
                   &image.pixels, &context),
        "read_png", path, ": ", context.message);
  return image;
}

Image image_grid(const Tensor& images, int rows, int columns, int padding, int scale) {
  check(images.defined() && images.dim() == 3, "image_grid",
        "expected images shaped [n, height, width], got ",
        images.defined() ? images.shape() : Shape{});
  check(rows > 0 && columns > 0 && padding >= 0 && scale >= 1, "image_grid", "bad grid ", rows,
        "x", columns, " with padding ", padding, " and scale ", scale);
  const int64_t n = images.size(0), h = images.size(1) * scale, w = images.size(2) * scale;
  check(n <= static_cast<int64_t>(rows) * columns, "image_grid", n, " images do not fit a ", rows,
        "x", columns, " grid");
  std::vector<double> values = images.to_vector();
  Image grid(static_cast<int>(columns * w + (columns + 1) * padding),
             static_cast<int>(rows * h + (rows + 1) * padding), 1);
  for (int64_t i = 0; i < n; ++i) {
    int64_t top = padding + (i / columns) * (h + padding), left = padding + (i % columns) * (w + padding);
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x) {
        double v = values[(i * images.size(1) + y / scale) * images.size(2) + x / scale];
        v = std::isnan(v) ? 0.0 : std::clamp(v, 0.0, 1.0);
        *grid.pixel(static_cast<int>(left + x), static_cast<int>(top + y)) =
            static_cast<uint8_t>(std::lround(v * 255.0));
      }
  }
  return grid;
}

}  // namespace tg
