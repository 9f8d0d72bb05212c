// src/io/png.cpp — PNG reading and writing with libpng, and tiling tensors into image grids.
#include <png.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>

#include "deflate_limit.h"
#include "files.h"
#include "tapegrad/error.h"
#include "tapegrad/image.h"
#include "tapegrad/tape.h"

namespace tg {

namespace {

void check_image_size(const char* op, int64_t width, int64_t height, int64_t channels) {
  check(width > 0 && height > 0 && channels >= 1 && channels <= 4, op,
        "expected a positive size and 1 to 4 channels, got ", width, "x", height, "x", channels);
  check(width <= kMaxImageSide && height <= kMaxImageSide &&
            width * height * channels <= kMaxImageBytes,
        op, "a ", width, "x", height, "x", channels, " image is larger than the limit (",
        kMaxImageSide, " pixels a side, ", kMaxImageBytes, " bytes)");
}

int color_type(int channels) {
  switch (channels) {
    case 1: return PNG_COLOR_TYPE_GRAY;
    case 2: return PNG_COLOR_TYPE_GRAY_ALPHA;
    case 3: return PNG_COLOR_TYPE_RGB;
    default: return PNG_COLOR_TYPE_RGB_ALPHA;
  }
}

// libpng reports errors through a callback that must not return. Throwing a C++ exception
// through libpng's C frames is not safe, so the callback stores the message and longjmps back to
// the setjmp in one of the small functions below; they hold no objects with destructors, and
// their callers turn a `false` into a tg::Error. An exception from our own write callback is
// kept in `error` and rethrown once libpng is out of the way.
struct PngContext {
  char message[256] = "unknown libpng error";
  std::exception_ptr error;
  AtomicFile* file = nullptr;                             // writing
  const uint8_t* data = nullptr;                          // reading, from memory
  size_t size = 0, offset = 0;
};

void on_png_error(png_structp png, png_const_charp message) {
  auto* context = static_cast<PngContext*>(png_get_error_ptr(png));
  if (message != context->message)
    std::snprintf(context->message, sizeof(context->message), "%s", message);
  png_longjmp(png, 1);
}
void on_png_warning(png_structp, png_const_charp) {}

void write_to_file(png_structp png, png_bytep data, size_t bytes) {
  auto* context = static_cast<PngContext*>(png_get_io_ptr(png));
  try {
    context->file->write(data, bytes);
    return;
  } catch (...) {
    context->error = std::current_exception();
  }
  png_error(png, "write failed");  // outside the catch block: nothing of it is left to unwind
}
void flush_nothing(png_structp) {}  // AtomicFile::commit flushes

void read_from_memory(png_structp png, png_bytep out, size_t bytes) {
  auto* context = static_cast<PngContext*>(png_get_io_ptr(png));
  if (bytes > context->size - context->offset) png_error(png, "the file is truncated");
  std::memcpy(out, context->data + context->offset, bytes);
  context->offset += bytes;
}

bool encode_png(png_structp png, png_infop info, const Image& image, PngContext* context) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_set_write_fn(png, context, write_to_file, flush_nothing);
  png_set_IHDR(png, info, image.width, image.height, 8, color_type(image.channels),
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  const size_t row_bytes = static_cast<size_t>(image.width) * image.channels;
  for (int y = 0; y < image.height; ++y) png_write_row(png, &image.pixels[y * row_bytes]);
  png_write_end(png, nullptr);
  return true;
}

struct PngHeader {
  uint32_t width = 0, height = 0;
  int channels = 0;
  size_t stored_row_bytes = 0, row_bytes = 0;  // in the file; after the transforms
};

// The header, and the transforms that turn any PNG into 8-bit gray, gray + alpha, RGB or RGBA.
bool read_png_header(png_structp png, png_infop info, PngHeader* header, PngContext* context) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_set_read_fn(png, context, read_from_memory);
  png_set_user_limits(png, kMaxImageSide, kMaxImageSide);
  png_set_chunk_malloc_max(png, 8 << 20);  // a text or profile chunk may not ask for more
  png_read_info(png, info);
  header->stored_row_bytes = png_get_rowbytes(png, info);
  png_set_expand(png);    // palette -> RGB, gray below 8 bits -> 8, transparency -> alpha
  png_set_scale_16(png);  // 16-bit samples -> 8
  png_set_interlace_handling(png);  // Adam7: png_read_image gathers the passes
  png_read_update_info(png, info);
  header->width = png_get_image_width(png, info);
  header->height = png_get_image_height(png, info);
  header->channels = png_get_channels(png, info);
  header->row_bytes = png_get_rowbytes(png, info);
  return true;
}

bool read_png_rows(png_structp png, png_bytepp rows) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_read_image(png, rows);
  png_read_end(png, nullptr);
  return true;
}

// Owns libpng's structures, so that every way out of read_png and write_png frees them.
struct PngStructs {
  bool writing;
  png_structp png = nullptr;
  png_infop info = nullptr;
  PngStructs(bool writing_, PngContext* context) : writing(writing_) {
    png = writing ? png_create_write_struct(PNG_LIBPNG_VER_STRING, context, on_png_error,
                                            on_png_warning)
                  : png_create_read_struct(PNG_LIBPNG_VER_STRING, context, on_png_error,
                                           on_png_warning);
    info = png ? png_create_info_struct(png) : nullptr;
    if (!info) {
      destroy();  // a constructor that throws gets no destructor call
      fail(writing ? "write_png" : "read_png", "libpng could not start (out of memory)");
    }
  }
  ~PngStructs() { destroy(); }
  void destroy() {
    if (writing) png_destroy_write_struct(&png, &info);
    else png_destroy_read_struct(&png, &info, nullptr);
  }
  PngStructs(const PngStructs&) = delete;
  PngStructs& operator=(const PngStructs&) = delete;
};

}  // namespace

Image::Image(int width_, int height_, int channels_, uint8_t fill)
    : width(width_), height(height_), channels(channels_) {
  check_image_size("image", width, height, channels);
  resize_or_fail(pixels, static_cast<size_t>(width) * height * channels, "image", "pixels",
                   fill);
}

void write_png(const std::string& path, const Image& image) {
  check_image_size("write_png", image.width, image.height, image.channels);
  const size_t expected = static_cast<size_t>(image.width) * image.height * image.channels;
  check(image.pixels.size() == expected, "write_png", path, ": the pixel buffer holds ",
        image.pixels.size(), " bytes, a ", image.width, "x", image.height, "x", image.channels,
        " image needs ", expected);
  AtomicFile file(path, "write_png");
  PngContext context;
  context.file = &file;
  bool encoded;
  {
    PngStructs structs(true, &context);
    encoded = encode_png(structs.png, structs.info, image, &context);
  }
  if (context.error) std::rethrow_exception(context.error);  // the file's own error, with errno
  check(encoded, "write_png", path, ": ", context.message);
  file.commit();
}

Image read_png(const std::string& path) {
  std::vector<uint8_t> bytes = read_file(path, "read_png");
  check(bytes.size() >= 8 && png_sig_cmp(bytes.data(), 0, 8) == 0, "read_png", path,
        ": not a PNG file (no PNG signature)");
  PngContext context;
  context.data = bytes.data();
  context.size = bytes.size();
  PngStructs structs(false, &context);
  PngHeader header;
  check(read_png_header(structs.png, structs.info, &header, &context), "read_png", path, ": ",
        context.message);
  // The rows are deflated into the file: refuse a header that claims more than it could hold
  // before allocating anything for them.
  const uint64_t stored = uint64_t(header.height) * (1 + header.stored_row_bytes);
  check(stored <= bytes.size() * kMaxDeflateRatio, "read_png", path, ": the header says ",
        header.width, "x", header.height, " pixels, more than a ", bytes.size(),
        "-byte file can hold; the file is corrupt");
  check_image_size("read_png", header.width, header.height, header.channels);
  check(header.row_bytes == size_t(header.width) * header.channels, "read_png", path,
        ": unexpected row size after conversion to 8 bits");  // libpng keeps its promise
  Image image;
  image.width = static_cast<int>(header.width);
  image.height = static_cast<int>(header.height);
  image.channels = header.channels;
  resize_or_fail(image.pixels, size_t(header.height) * header.row_bytes, "read_png", path);
  std::vector<png_bytep> rows;
  resize_or_fail(rows, header.height, "read_png", path);
  for (uint32_t y = 0; y < header.height; ++y) rows[y] = image.pixels.data() + y * header.row_bytes;
  check(read_png_rows(structs.png, rows.data()), "read_png", path, ": ", context.message);
  return image;
}

// ---------------------------------------------------------------- grids

namespace {
// count·(size·scale + padding) + padding: the grid's extent along one axis, or -1 when that
// overflows int64.
int64_t grid_extent(int64_t count, int64_t size, int64_t scale, int64_t padding) {
  int64_t scaled, cell, cells, extent;
  if (__builtin_mul_overflow(size, scale, &scaled) || __builtin_add_overflow(scaled, padding, &cell) ||
      __builtin_mul_overflow(count, cell, &cells) || __builtin_add_overflow(cells, padding, &extent))
    return -1;
  return extent;
}
}  // namespace

Image image_grid(const Tensor& images, int rows, int columns, int padding, int scale) {
  check(images.defined() && images.dim() == 3, "image_grid",
        "expected images shaped [n, height, width], got ",
        images.defined() ? images.shape() : Shape{});
  check(rows > 0 && columns > 0 && padding >= 0 && scale >= 1, "image_grid", "bad grid ", rows,
        "x", columns, " with padding ", padding, " and scale ", scale);
  const int64_t n = images.size(0), image_height = images.size(1), image_width = images.size(2);
  check(image_height > 0 && image_width > 0, "image_grid", "images of shape ", images.shape(),
        " have no pixels");
  check(n <= static_cast<int64_t>(rows) * columns, "image_grid", n, " images do not fit a ", rows,
        "x", columns, " grid");
  const int64_t width = grid_extent(columns, image_width, scale, padding);
  const int64_t height = grid_extent(rows, image_height, scale, padding);
  check(width > 0 && height > 0 && width <= kMaxImageSide && height <= kMaxImageSide &&
            width * height <= kMaxImageBytes,
        "image_grid", rows, "x", columns, " images of ", image_height, "x", image_width,
        " at scale ", scale, " with padding ", padding, " make a grid of ",
        width < 0 ? std::string("more than 2^63") : std::to_string(width), "x",
        height < 0 ? std::string("more than 2^63") : std::to_string(height),
        " pixels, larger than an Image may be (", kMaxImageSide, " pixels a side, ",
        kMaxImageBytes, " bytes)");
  Image grid(static_cast<int>(width), static_cast<int>(height), 1);

  NoGrad no_grad;  // the pixels are data: nothing to record
  Tensor host = images.to(Device::cpu_device());
  if (host.dtype() != DType::f32) host = host.to(DType::f64);
  const float* f32 = host.dtype() == DType::f32 ? host.data<float>() : nullptr;
  const double* f64 = f32 ? nullptr : host.data<double>();
  const int64_t h = image_height * scale, w = image_width * scale;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t top = padding + (i / columns) * (h + padding);
    const int64_t left = padding + (i % columns) * (w + padding);
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x) {
        const int64_t at = (i * image_height + y / scale) * image_width + x / scale;
        double v = f32 ? f32[at] : f64[at];
        v = std::isnan(v) ? 0.0 : std::clamp(v, 0.0, 1.0);
        *grid.pixel(static_cast<int>(left + x), static_cast<int>(top + y)) =
            static_cast<uint8_t>(std::lround(v * 255.0));
      }
  }
  return grid;
}

}  // namespace tg
