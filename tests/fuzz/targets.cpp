// tests/fuzz/targets.cpp — see targets.h.
#include "targets.h"

#include <stdlib.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace tgfuzz {

namespace {

// A private folder for the files given to the readers: made once, removed when the process ends.
// In memory (/dev/shm) where there is one: rewriting a file on a disk can cost a block discard
// per input, which slowed fuzzing down to ~100 inputs a second here.
const std::string& scratch_folder() {
  static const std::string folder = [] {
    std::filesystem::path base = access("/dev/shm", W_OK | X_OK) == 0
                                     ? std::filesystem::path("/dev/shm")
                                     : std::filesystem::temp_directory_path();
    std::string name = (base / "tapegrad-fuzz-XXXXXX").string();
    if (!mkdtemp(name.data())) throw std::runtime_error("fuzz: mkdtemp failed");
    return name;
  }();
  static const bool cleanup_registered = std::atexit([] {
    std::error_code ignored;
    std::filesystem::remove_all(scratch_folder(), ignored);
  }) == 0;
  (void)cleanup_registered;
  return folder;
}

// Writes the bytes to the scratch file `name` and returns its path.
std::string scratch_file(const std::string& name, const uint8_t* data, size_t size) {
  std::string path = scratch_folder() + "/" + name;
  FILE* file = std::fopen(path.c_str(), "wb");
  if (!file || std::fwrite(data, 1, size, file) != size || std::fclose(file) != 0)
    throw std::runtime_error("fuzz: cannot write " + path);  // the harness's fault, not a find
  return path;
}

// Runs f; a tg::Error is the correct answer to bad input, any other exception escapes (and is
// a crash to libFuzzer, a failure to the test suite).
template <class F>
void only_tg_errors(F&& f) {
  try {
    f();
  } catch (const tg::Error&) {
  }
}

void put_u32_le(uint8_t* p, uint32_t v) { std::memcpy(p, &v, 4); }  // little-endian host
void put_u32_be(uint8_t* p, uint32_t v) {
  for (int k = 0; k < 4; ++k) p[k] = static_cast<uint8_t>(v >> (24 - 8 * k));
}
uint32_t get_u32_be(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3];
}

// The bytes in the gzip format, as zlib's gzopen would write them.
std::vector<uint8_t> gzip(const uint8_t* data, size_t size) {
  z_stream stream{};
  // A small window and little memory: inputs are a few KiB, and this runs for every one.
  deflateInit2(&stream, Z_BEST_SPEED, Z_DEFLATED, 9 + 16, 1, Z_DEFAULT_STRATEGY);
  std::vector<uint8_t> out(deflateBound(&stream, size));
  stream.next_in = const_cast<Bytef*>(data);
  stream.avail_in = static_cast<uInt>(size);
  stream.next_out = out.data();
  stream.avail_out = static_cast<uInt>(out.size());
  deflate(&stream, Z_FINISH);
  out.resize(stream.total_out);
  deflateEnd(&stream);
  return out;
}

// A checkpoint whose "file size" field (bytes 12..19) and trailing CRC-32 agree with the bytes.
std::vector<uint8_t> repair_checkpoint(const uint8_t* data, size_t size) {
  std::vector<uint8_t> bytes(data, data + size);
  if (size < 28) return bytes;
  uint64_t total = size;
  std::memcpy(bytes.data() + 12, &total, 8);
  uLong crc = crc32(0, bytes.data(), static_cast<uInt>(size - 4));
  put_u32_le(bytes.data() + size - 4, static_cast<uint32_t>(crc));
  return bytes;
}

// A PNG with the signature in place and each complete chunk's CRC matching its type and data.
std::vector<uint8_t> repair_png(const uint8_t* data, size_t size) {
  static const uint8_t signature[8] = {137, 'P', 'N', 'G', 13, 10, 26, 10};
  std::vector<uint8_t> bytes(data, data + size);
  if (bytes.size() < 8) bytes.resize(8);
  std::memcpy(bytes.data(), signature, 8);
  for (size_t at = 8; at + 12 <= bytes.size();) {
    uint64_t length = get_u32_be(&bytes[at]);
    if (at + 12 + length > bytes.size()) break;
    uLong crc = crc32(0, &bytes[at + 4], static_cast<uInt>(4 + length));
    put_u32_be(&bytes[at + 8 + length], static_cast<uint32_t>(crc));
    at += 12 + length;
  }
  return bytes;
}

}  // namespace

void read_idx(const uint8_t* data, size_t size) {
  const std::string raw = scratch_file("input.idx", data, size);
  for (tg::DType dtype : {tg::DType::f32, tg::DType::f64, tg::DType::i64})
    only_tg_errors([&] { tg::data::read_idx(raw, dtype); });
  const std::string as_gz = scratch_file("input.idx.gz", data, size);
  only_tg_errors([&] { tg::data::read_idx(as_gz, tg::DType::f32); });
  std::vector<uint8_t> packed = gzip(data, size);
  const std::string gz = scratch_file("packed.idx.gz", packed.data(), packed.size());
  only_tg_errors([&] { tg::data::read_idx(gz, tg::DType::i64); });
}

void read_state_dict(const uint8_t* data, size_t size) {
  only_tg_errors([&] { tg::read_state_dict(scratch_file("input.tgc", data, size)); });
  std::vector<uint8_t> repaired = repair_checkpoint(data, size);
  only_tg_errors([&] {
    tg::read_state_dict(scratch_file("repaired.tgc", repaired.data(), repaired.size()));
  });
}

void load_checkpoint(const uint8_t* data, size_t size) {
  tg::TrainingState& state = training_state();
  only_tg_errors([&] { tg::load_checkpoint(scratch_file("input.tgc", data, size), state); });
  std::vector<uint8_t> repaired = repair_checkpoint(data, size);
  only_tg_errors([&] {
    tg::load_checkpoint(scratch_file("repaired.tgc", repaired.data(), repaired.size()), state);
  });
}

void read_png(const uint8_t* data, size_t size) {
  auto check_image = [](const tg::Image& image) {  // what every read_png result promises
    if (image.channels < 1 || image.channels > 4 || image.width <= 0 || image.height <= 0 ||
        image.pixels.size() != size_t(image.width) * image.height * image.channels)
      throw std::logic_error("read_png returned an inconsistent Image");
  };
  only_tg_errors([&] { check_image(tg::read_png(scratch_file("input.png", data, size))); });
  std::vector<uint8_t> repaired = repair_png(data, size);
  only_tg_errors([&] {
    check_image(tg::read_png(scratch_file("repaired.png", repaired.data(), repaired.size())));
  });
}

const std::vector<Target>& targets() {
  static const std::vector<Target> all = {{"read_idx", read_idx},
                                          {"read_state_dict", read_state_dict},
                                          {"load_checkpoint", load_checkpoint},
                                          {"read_png", read_png}};
  return all;
}

tg::TrainingState& training_state(int steps) {
  static tg::Generator init(1), data(2, 1), noise(2, 2);
  static tg::nn::MLP model({3, 4, 2}, init);
  static tg::optim::Adam adam(model.parameters());
  static tg::TrainingState state{&model, &adam, {{"data", &data}, {"noise", &noise}}};
  for (int i = 0; i < steps; ++i) {
    adam.zero_grad();
    tg::backward(tg::sum(tg::square(model(tg::randn({2, 3}, noise)))));
    adam.step();
    ++state.step;
  }
  return state;
}

}  // namespace tgfuzz
