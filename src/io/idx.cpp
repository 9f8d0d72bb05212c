// src/io/idx.cpp — IDX files (the MNIST format), raw or gzip-compressed through zlib, and the
// MNIST-layout dataset loader built on them. Nothing in a file is trusted before it is checked.
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <optional>
#include <vector>

#include "deflate_limit.h"
#include "files.h"
#include "tapegrad/backend.h"
#include "tapegrad/data.h"
#include "tapegrad/error.h"
#include "tapegrad/tape.h"

namespace tg::data {

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool file_exists(const std::string& path) {
  struct stat info;
  return ::stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode);
}

// Reads a file front to back, through zlib when it is gzip-compressed. read() returns how many
// bytes it got (fewer only at the end of the data) and throws on a read or decompression error.
class Source {
 public:
  explicit Source(const std::string& path)
      : path_(path), gzip_(ends_with(path, ".gz")), file_(path, "read_idx") {
    if (gzip_) {
      int descriptor = file_.release();
      gz_ = gzdopen(descriptor, "rb");
      if (!gz_) {
        ::close(descriptor);
        fail("read_idx", path, ": cannot open: zlib is out of memory");
      }
      // Large reads for large files; a small file gets a small buffer (zlib allocates two).
      gzbuffer(gz_, static_cast<unsigned>(std::clamp<uint64_t>(file_.size(), 8192, 1 << 17)));
    }
  }
  ~Source() {
    if (gz_) gzclose(gz_);
  }
  Source(const Source&) = delete;
  Source& operator=(const Source&) = delete;

  bool gzip() const { return gzip_; }
  uint64_t file_bytes() const { return file_.size(); }

  // zlib's message for the last error, without the "<path>: " it puts in front.
  std::string gz_message() {
    int code = 0;
    std::string message = gzerror(gz_, &code);
    if (message.compare(0, path_.size() + 2, path_ + ": ") == 0) message.erase(0, path_.size() + 2);
    return message;
  }
  int gz_code() {
    int code = 0;
    gzerror(gz_, &code);
    return code;
  }

  uint64_t read(void* out, uint64_t bytes) {
    if (!gzip_) return file_.read(out, bytes);
    uint64_t done = 0;
    char* dst = static_cast<char*>(out);
    while (done < bytes) {
      unsigned chunk = static_cast<unsigned>(std::min<uint64_t>(bytes - done, 1u << 30));
      if (done == 0 && bytes_read_ == 0 && gzdirect(gz_) == 1 && peek_direct())
        fail("read_idx", path_, ": the name ends in .gz but the file is not gzip data");
      int got = gzread(gz_, dst + done, chunk);
      if (got < 0) fail("read_idx", path_, ": corrupt gzip data: ", gz_message());
      if (got == 0) {
        if (gz_code() != Z_OK)
          fail("read_idx", path_, ": corrupt or truncated gzip data: ", gz_message());
        break;
      }
      done += static_cast<uint64_t>(got);
    }
    bytes_read_ += done;
    return done;
  }

 private:
  // gzdirect() is only meaningful once zlib has looked at the first bytes; gzread of 0 bytes
  // does not look, so this asks for the answer after zlib has buffered the start of the file.
  bool peek_direct() {
    int c = gzgetc(gz_);
    if (c < 0) return false;  // empty: reported as truncated by the caller
    gzungetc(c, gz_);
    return gzdirect(gz_) == 1;
  }

  std::string path_;
  bool gzip_;
  InputFile file_;
  uint64_t bytes_read_ = 0;
  gzFile gz_ = nullptr;
};

int element_size(IdxType type) {
  switch (type) {
    case IdxType::u8: case IdxType::i8: return 1;
    case IdxType::i16: return 2;
    case IdxType::i32: case IdxType::f32: return 4;
    case IdxType::f64: return 8;
  }
  return 0;
}

const char* type_name(IdxType type) {
  switch (type) {
    case IdxType::u8: return "u8";
    case IdxType::i8: return "i8";
    case IdxType::i16: return "i16";
    case IdxType::i32: return "i32";
    case IdxType::f32: return "f32";
    case IdxType::f64: return "f64";
  }
  return "?";
}

bool valid_type(uint8_t code) {
  return code == 0x08 || code == 0x09 || code == 0x0B || code == 0x0C || code == 0x0D ||
         code == 0x0E;
}

uint32_t big_endian_u32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

// Element i of big-endian data of `type`, as a double.
double element(const uint8_t* data, IdxType type, int64_t i) {
  const uint8_t* p = data + i * element_size(type);
  switch (type) {
    case IdxType::u8: return p[0];
    case IdxType::i8: return static_cast<int8_t>(p[0]);
    case IdxType::i16: return static_cast<int16_t>((uint16_t(p[0]) << 8) | p[1]);
    case IdxType::i32: return static_cast<int32_t>(big_endian_u32(p));
    case IdxType::f32: {
      uint32_t bits = big_endian_u32(p);
      float f;
      std::memcpy(&f, &bits, 4);
      return f;
    }
    case IdxType::f64: {
      uint64_t bits = (uint64_t(big_endian_u32(p)) << 32) | big_endian_u32(p + 4);
      double d;
      std::memcpy(&d, &bits, 8);
      return d;
    }
  }
  return 0;
}

}  // namespace

Tensor read_idx(const std::string& path, DType dtype, double scale) {
  Source source(path);
  uint8_t header[4];
  uint64_t got = source.read(header, 4);
  check(got == 4, "read_idx", path, ": truncated: ", got, " bytes, shorter than the 4-byte header");
  check(header[0] == 0 && header[1] == 0 && valid_type(header[2]), "read_idx", path,
        ": not an IDX file (bad magic ", int(header[0]), " ", int(header[1]), " ",
        int(header[2]), "; expected 0 0 and a type code 0x08, 0x09, 0x0B, 0x0C, 0x0D or 0x0E)");
  IdxType type = static_cast<IdxType>(header[2]);
  int rank = header[3];
  check(rank >= 1 && rank <= kMaxRank, "read_idx", path, ": rank ", rank,
        " is outside the supported 1..", kMaxRank);

  uint8_t dim_bytes[4 * kMaxRank];
  got = source.read(dim_bytes, 4 * rank);
  check(got == uint64_t(4 * rank), "read_idx", path, ": truncated inside the header (", rank,
        " dimensions need ", 4 * rank, " bytes, got ", got, ")");
  Shape shape;
  uint64_t count = 1;
  for (int d = 0; d < rank; ++d) {
    uint32_t size = big_endian_u32(dim_bytes + 4 * d);
    check(size > 0, "read_idx", path, ": dimension ", d, " is 0");
    shape.push_back(size);
    count *= size;
    check(count <= (uint64_t(1) << 36), "read_idx", path, ": dimensions ", shape,
          "... describe more than 2^36 elements; the header is corrupt");
  }
  const uint64_t header_bytes = 4 + 4 * uint64_t(rank);
  const uint64_t data_bytes = count * element_size(type);
  if (source.gzip()) {
    check(data_bytes <= source.file_bytes() * kMaxDeflateRatio, "read_idx", path, ": header says ",
          shape, " ", type_name(type), " (", data_bytes, " bytes), more than a ",
          source.file_bytes(), "-byte gzip file can hold; the header is corrupt");
  } else {
    uint64_t available = source.file_bytes() - std::min(header_bytes, source.file_bytes());
    check(available >= data_bytes, "read_idx", path, ": truncated: header says ", shape, " ",
          type_name(type), " = ", data_bytes, " bytes of data, the file has ", available);
    check(available == data_bytes, "read_idx", path, ": ", available - data_bytes,
          " unexpected bytes after the ", shape, " ", type_name(type), " data");
  }

  // Raw data was checked against the file's size. A gzip stream grows the buffer only as fast
  // as it actually decompresses, so a header that lies costs no more memory than the data has.
  std::vector<uint8_t> data;
  got = 0;
  while (got < data_bytes) {
    uint64_t chunk = source.gzip() ? std::min(data_bytes - got, std::max<uint64_t>(got, 1 << 20))
                                   : data_bytes;
    resize_or_fail(data, got + chunk, "read_idx", path);
    uint64_t n = source.read(data.data() + got, chunk);
    got += n;
    if (n < chunk) break;
  }
  check(got == data_bytes, "read_idx", path, ": truncated: header says ", shape, " ",
        type_name(type), " = ", data_bytes, " bytes of data, the file has ", got);
  uint8_t extra;
  check(source.read(&extra, 1) == 0, "read_idx", path, ": unexpected bytes after the ", shape,
        " ", type_name(type), " data");

  Tensor out = empty(shape, dtype);
  const int64_t n = static_cast<int64_t>(count);
  if (dtype == DType::f32) {
    float* y = out.data<float>();
    if (type == IdxType::u8) {  // the common case, kept to a tight loop
      // In double, then rounded once: pixel * (1 / 255.0) gives the float nearest pixel / 255,
      // the value torchvision's ToTensor computes.
      for (int64_t i = 0; i < n; ++i) y[i] = static_cast<float>(data[i] * scale);
    } else {
      for (int64_t i = 0; i < n; ++i)
        y[i] = static_cast<float>(element(data.data(), type, i) * scale);
    }
  } else if (dtype == DType::f64) {
    double* y = out.data<double>();
    for (int64_t i = 0; i < n; ++i) y[i] = element(data.data(), type, i) * scale;
  } else {
    int64_t* y = out.data<int64_t>();
    for (int64_t i = 0; i < n; ++i) {
      double v = element(data.data(), type, i) * scale;
      check(std::isfinite(v) && v == std::floor(v), "read_idx", path, ": element ", i, " (", v,
            ") is not an integer and cannot be read as i64");
      check(v >= -0x1p63 && v < 0x1p63, "read_idx", path, ": element ", i, " (", v,
            ") is outside the i64 range");
      y[i] = static_cast<int64_t>(v);
    }
  }
  return out;
}

// ---------------------------------------------------------------- writing

namespace {

// Compresses what it is given into `file` in the gzip format (zlib's deflate, as gzopen writes).
class GzipWriter {
 public:
  explicit GzipWriter(AtomicFile& file) : file_(file) {
    check(deflateInit2(&stream_, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8,
                       Z_DEFAULT_STRATEGY) == Z_OK,
          "write_idx", file.path(), ": zlib could not start (out of memory)");
  }
  ~GzipWriter() { deflateEnd(&stream_); }
  GzipWriter(const GzipWriter&) = delete;
  GzipWriter& operator=(const GzipWriter&) = delete;

  void write(const uint8_t* data, size_t bytes) { deflate_into_file(data, bytes, Z_NO_FLUSH); }
  void finish() { deflate_into_file(nullptr, 0, Z_FINISH); }

 private:
  void deflate_into_file(const uint8_t* data, size_t bytes, int flush) {
    stream_.next_in = const_cast<Bytef*>(data);
    stream_.avail_in = static_cast<uInt>(bytes);  // callers pass small chunks
    do {
      stream_.next_out = buffer_;
      stream_.avail_out = sizeof buffer_;
      check(deflate(&stream_, flush) != Z_STREAM_ERROR, "write_idx", file_.path(),
            ": zlib failed");
      file_.write(buffer_, sizeof buffer_ - stream_.avail_out);
    } while (stream_.avail_out == 0);
  }

  AtomicFile& file_;
  z_stream stream_{};
  Bytef buffer_[1 << 16];
};

}  // namespace

void write_idx(const std::string& path, const Tensor& values, IdxType type) {
  check(values.defined() && values.dim() >= 1, "write_idx", path, ": need a tensor of rank >= 1");
  check(valid_type(static_cast<uint8_t>(type)), "write_idx", path, ": unknown IDX type code ",
        int(type));
  std::vector<uint8_t> header = {0, 0, static_cast<uint8_t>(type),
                                 static_cast<uint8_t>(values.dim())};
  for (int64_t d : values.shape()) {
    check(d > 0 && d <= 0xffffffffll, "write_idx", path, ": dimension ", d, " of ",
          values.shape(), " does not fit IDX (1 to 2^32 - 1)");
    for (int shift = 24; shift >= 0; shift -= 8) header.push_back(static_cast<uint8_t>(d >> shift));
  }
  NoGrad no_grad;
  const Tensor host = values.to(Device::cpu_device());
  auto value = [&](int64_t i) -> double {
    switch (host.dtype()) {
      case DType::f32: return host.data<float>()[i];
      case DType::f64: return host.data<double>()[i];
      case DType::i64: return static_cast<double>(host.data<int64_t>()[i]);
    }
    return 0;
  };
  auto check_integer = [&](double x, double low, double high) {
    check(x == std::floor(x) && x >= low && x <= high, "write_idx", path, ": value ", x,
          " does not fit IDX type ", type_name(type));
  };
  // Big-endian bytes of element i.
  const int size = element_size(type);
  auto encode = [&](int64_t i, uint8_t* p) {
    const double v = value(i);
    uint64_t bits = 0;
    switch (type) {
      case IdxType::u8: check_integer(v, 0, 255); bits = static_cast<uint8_t>(v); break;
      case IdxType::i8:
        check_integer(v, -128, 127);
        bits = static_cast<uint8_t>(static_cast<int8_t>(v));
        break;
      case IdxType::i16:
        check_integer(v, -32768, 32767);
        bits = static_cast<uint16_t>(static_cast<int16_t>(v));
        break;
      case IdxType::i32:
        check_integer(v, -2147483648.0, 2147483647.0);
        bits = static_cast<uint32_t>(static_cast<int32_t>(v));
        break;
      case IdxType::f32: {
        float f = static_cast<float>(v);
        uint32_t b;
        std::memcpy(&b, &f, 4);
        bits = b;
        break;
      }
      case IdxType::f64: std::memcpy(&bits, &v, 8); break;
    }
    for (int k = 0; k < size; ++k) p[k] = static_cast<uint8_t>(bits >> (8 * (size - 1 - k)));
  };

  // Streamed in chunks through one AtomicFile: a value that does not fit, a full disk or a
  // crash leaves any existing file as it was.
  AtomicFile file(path, "write_idx");
  std::optional<GzipWriter> gzip;
  if (ends_with(path, ".gz")) gzip.emplace(file);
  auto emit = [&](const uint8_t* data, size_t bytes) {
    if (gzip) gzip->write(data, bytes);
    else file.write(data, bytes);
  };
  emit(header.data(), header.size());
  constexpr int64_t kChunk = 8192;
  std::vector<uint8_t> chunk(kChunk * size);
  const int64_t n = host.numel();
  for (int64_t start = 0; start < n; start += kChunk) {
    const int64_t count = std::min(kChunk, n - start);
    for (int64_t i = 0; i < count; ++i) encode(start + i, chunk.data() + i * size);
    emit(chunk.data(), static_cast<size_t>(count * size));
  }
  if (gzip) gzip->finish();
  file.commit();
}

// ---------------------------------------------------------------- MNIST layout

namespace {
// "<directory>/<name>" if it exists, else "<directory>/<name>.gz"; throws naming both.
std::string find_file(const std::string& directory, const std::string& name) {
  std::string raw = directory + "/" + name, gz = raw + ".gz";
  if (file_exists(raw)) return raw;
  if (file_exists(gz)) return gz;
  fail("load_mnist", "missing ", name, "(.gz) in ", directory, ": neither ", raw, " nor ", gz,
       " exists");
}
}  // namespace

Dataset load_mnist(const std::string& directory, const std::string& split, Device device) {
  check(split == "train" || split == "test", "load_mnist",
        "split must be \"train\" or \"test\", got \"", split, "\"");
  struct stat info;
  check(::stat(directory.c_str(), &info) == 0 && S_ISDIR(info.st_mode), "load_mnist",
        "data directory ", directory, " does not exist");
  const std::string prefix = split == "train" ? "train" : "t10k";
  std::string images_path = find_file(directory, prefix + "-images-idx3-ubyte");
  std::string labels_path = find_file(directory, prefix + "-labels-idx1-ubyte");
  Dataset data;
  data.images = read_idx(images_path, DType::f32, 1.0 / 255.0);
  data.labels = read_idx(labels_path, DType::i64);
  check(data.images.dim() == 3, "load_mnist", images_path,
        ": expected images of rank 3 [n, rows, columns], got ", data.images.shape());
  check(data.labels.dim() == 1, "load_mnist", labels_path, ": expected labels of rank 1 [n], got ",
        data.labels.shape());
  check(data.images.size(0) == data.labels.size(0), "load_mnist", images_path, " has ",
        data.images.size(0), " images but ", labels_path, " has ", data.labels.size(0), " labels");
  data.images = data.images.to(device);
  data.labels = data.labels.to(device);
  return data;
}

}  // namespace tg::data
