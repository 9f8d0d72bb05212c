// src/io/checkpoint.cpp — the checkpoint file format (see checkpoint.h) and TrainingState.
//
// Writing streams the entries into an AtomicFile (files.h) while zlib's crc32() (a well-kept
// implementation, rather than a hand-written table) accumulates the checksum. Reading loads the
// whole file, checks length and checksum first, then parses with a bounds check on every field,
// so a damaged file can neither crash the reader nor make it allocate more than the file's size.
#include <zlib.h>

#include <algorithm>
#include <cstring>

#include "files.h"
#include "tapegrad/checkpoint.h"
#include "tapegrad/error.h"
#include "tapegrad/tape.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "checkpoint.cpp writes tensor data in host order and assumes a little-endian host"
#endif

namespace tg {

namespace {

constexpr uint8_t kMagic[8] = {0x89, 'T', 'G', 'C', 'K', 'P', 'T', 0x0A};
constexpr uint32_t kVersion = 1;
constexpr size_t kHeaderBytes = 8 + 4 + 8 + 4;  // magic, version, file size, entry count
constexpr size_t kChecksumBytes = 4;

uint8_t dtype_code(DType dtype) {
  switch (dtype) {
    case DType::f32: return 0;
    case DType::f64: return 1;
    case DType::i64: return 2;
  }
  return 255;
}

bool dtype_from_code(uint8_t code, DType& dtype) {
  switch (code) {
    case 0: dtype = DType::f32; return true;
    case 1: dtype = DType::f64; return true;
    case 2: dtype = DType::i64; return true;
  }
  return false;
}

size_t entry_bytes(const std::string& name, const Tensor& t) {
  return 2 + name.size() + 1 + 1 + 8 * t.dim() + t.numel() * dtype_size(t.dtype());
}

// zlib's crc32() continued over n bytes; it takes a uInt length, so files over 4 GiB go in chunks.
uLong crc32_update(uLong crc, const void* data, size_t n) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    uInt chunk = static_cast<uInt>(std::min<size_t>(n, 1u << 30));
    crc = crc32(crc, p, chunk);
    p += chunk;
    n -= chunk;
  }
  return crc;
}

// Writes fields into the atomic file and keeps the running CRC-32 of everything written.
class ChecksummedWriter {
 public:
  explicit ChecksummedWriter(AtomicFile& file) : file_(file), crc_(crc32(0, nullptr, 0)) {}
  void bytes(const void* data, size_t n) {
    file_.write(data, n);
    crc_ = crc32_update(crc_, data, n);
  }
  template <class T>
  void value(T v) {  // integers, little-endian (the host order, checked above)
    bytes(&v, sizeof v);
  }
  uint32_t crc() const { return static_cast<uint32_t>(crc_); }

 private:
  AtomicFile& file_;
  uLong crc_;
};

// Reads fields from the loaded file with a bounds check on each.
class Reader {
 public:
  Reader(const std::string& path, const std::vector<uint8_t>& data, size_t end)
      : path_(path), data_(data), end_(end) {}
  size_t offset() const { return offset_; }
  size_t remaining() const { return end_ - offset_; }
  const uint8_t* take(size_t n, const std::string& what) {
    check(n <= remaining(), "load_checkpoint", path_, ": malformed: ", what, " needs ", n,
          " bytes at offset ", offset_, ", only ", remaining(), " remain before the checksum");
    const uint8_t* p = data_.data() + offset_;
    offset_ += n;
    return p;
  }
  template <class T>
  T value(const std::string& what) {
    T v;
    std::memcpy(&v, take(sizeof v, what), sizeof v);
    return v;
  }

 private:
  const std::string& path_;
  const std::vector<uint8_t>& data_;
  size_t offset_ = 0, end_;
};

}  // namespace

// ---------------------------------------------------------------- writing

void write_state_dict(const std::string& path, const StateDict& state,
                      const std::function<void(const std::string&)>& before_rename) {
  // Host copies first: any device transfer error happens before the file is touched.
  std::vector<std::pair<std::string, Tensor>> entries;
  uint64_t total = kHeaderBytes + kChecksumBytes;
  for (const auto& e : state) {
    check(e.first.size() <= 0xffff, "save_checkpoint", "entry name '", e.first.substr(0, 40),
          "...' is longer than 65535 bytes");
    Tensor host = e.second.to(Device::cpu_device());
    total += entry_bytes(e.first, host);
    entries.emplace_back(e.first, host);
  }
  check(state.size() <= 0xffffffffu, "save_checkpoint", "too many entries");

  AtomicFile file(path, "save_checkpoint");
  ChecksummedWriter out(file);
  out.bytes(kMagic, sizeof kMagic);
  out.value<uint32_t>(kVersion);
  out.value<uint64_t>(total);
  out.value<uint32_t>(static_cast<uint32_t>(entries.size()));
  for (const auto& e : entries) {
    const Tensor& t = e.second;
    out.value<uint16_t>(static_cast<uint16_t>(e.first.size()));
    out.bytes(e.first.data(), e.first.size());
    out.value<uint8_t>(dtype_code(t.dtype()));
    out.value<uint8_t>(static_cast<uint8_t>(t.dim()));
    for (int64_t size : t.shape()) out.value<int64_t>(size);
    out.bytes(t.raw_data(), t.numel() * dtype_size(t.dtype()));
  }
  uint32_t crc = out.crc();
  file.write(&crc, sizeof crc);
  file.commit(before_rename);  // flush, fsync, rename over the target
}

// ---------------------------------------------------------------- reading

StateDict read_state_dict(const std::string& path) {
  std::vector<uint8_t> data = read_file(path, "load_checkpoint");

  size_t magic_bytes = std::min<size_t>(data.size(), 8);
  check(magic_bytes == 0 || std::memcmp(data.data(), kMagic, magic_bytes) == 0, "load_checkpoint",
        path, ": not a tapegrad checkpoint (bad magic)");
  check(data.size() >= kHeaderBytes + kChecksumBytes, "load_checkpoint", path, ": truncated: ",
        data.size(), " bytes, shorter than the ", kHeaderBytes + kChecksumBytes,
        "-byte header and checksum");
  Reader header(path, data, kHeaderBytes);
  header.take(8, "magic");
  uint32_t version = header.value<uint32_t>("version");
  check(version == kVersion, "load_checkpoint", path, ": format version ", version,
        " is not supported (this build reads version ", kVersion, ")");
  uint64_t total = header.value<uint64_t>("file size");
  check(data.size() >= total, "load_checkpoint", path, ": truncated: the header says ", total,
        " bytes, the file has ", data.size());
  check(data.size() == total, "load_checkpoint", path, ": ", data.size() - total,
        " unexpected bytes after the ", total, " the header declares");
  uint32_t stored_crc;
  std::memcpy(&stored_crc, data.data() + total - kChecksumBytes, 4);
  uint32_t computed_crc =
      static_cast<uint32_t>(crc32_update(crc32(0, nullptr, 0), data.data(), total - kChecksumBytes));
  check(stored_crc == computed_crc, "load_checkpoint", path, ": checksum mismatch (stored ",
        std::hex, stored_crc, ", computed ", computed_crc, std::dec, "): the file is corrupt");

  Reader reader(path, data, total - kChecksumBytes);
  reader.take(8 + 4 + 8, "header");
  uint32_t count = reader.value<uint32_t>("entry count");
  StateDict state;
  for (uint32_t i = 0; i < count; ++i) {
    std::string where = "entry " + std::to_string(i);
    uint16_t name_length = reader.value<uint16_t>(where + "'s name length");
    const uint8_t* name_bytes = reader.take(name_length, where + "'s name");
    std::string name(reinterpret_cast<const char*>(name_bytes), name_length);
    where = "entry '" + name + "'";
    check(!name.empty() && !state.contains(name), "load_checkpoint", path, ": malformed: ", where,
          name.empty() ? " has an empty name" : " appears twice");
    DType dtype;
    uint8_t code = reader.value<uint8_t>(where + "'s dtype");
    check(dtype_from_code(code, dtype), "load_checkpoint", path, ": malformed: ", where,
          " has unknown dtype code ", int(code));
    uint8_t rank = reader.value<uint8_t>(where + "'s rank");
    check(rank <= kMaxRank, "load_checkpoint", path, ": malformed: ", where, " has rank ",
          int(rank));
    Shape shape;
    uint64_t numel = 1;
    for (int d = 0; d < rank; ++d) {
      int64_t size = reader.value<int64_t>(where + "'s shape");
      check(size >= 0 && (size == 0 || numel <= reader.remaining() / static_cast<uint64_t>(size)),
            "load_checkpoint", path, ": malformed: ", where, " has an impossible size ", size);
      shape.push_back(size);
      numel *= static_cast<uint64_t>(size);
    }
    size_t bytes = numel * dtype_size(dtype);
    const uint8_t* values = reader.take(bytes, where + "'s data");
    Tensor t = empty(shape, dtype);
    if (bytes) std::memcpy(t.raw_data(), values, bytes);
    state.add(name, t);
  }
  check(reader.remaining() == 0, "load_checkpoint", path, ": malformed: ", reader.remaining(),
        " bytes after the last entry");
  return state;
}

// ---------------------------------------------------------------- generators

Tensor generator_state(const Generator& generator) {
  Generator::State s = generator.state();
  Tensor t = empty({3}, DType::i64);
  int64_t* v = t.data<int64_t>();
  uint64_t words[3] = {s.seed, s.stream, s.offset};
  std::memcpy(v, words, sizeof words);  // the bits, not the values: u64 above 2^63 survive
  return t;
}

Generator::State generator_state_from(const Tensor& state, const std::string& name) {
  check(state.defined() && state.dtype() == DType::i64 && state.shape() == Shape{3},
        "load_checkpoint", "generator '", name, "' should be an i64 [3] state, got ",
        state.defined() ? state.shape() : Shape{}, " ",
        state.defined() ? state.dtype() : DType::i64);
  Tensor host = state.to(Device::cpu_device());
  uint64_t words[3];
  std::memcpy(words, host.data<int64_t>(), sizeof words);
  Generator::State s;
  s.seed = words[0];
  s.stream = words[1];
  s.offset = words[2];
  return s;
}

// ---------------------------------------------------------------- training runs

StateDict TrainingState::state_dict() const {
  check(model != nullptr, "save_checkpoint", "a TrainingState needs a model");
  StateDict state;
  state.add_all("model.", model->state_dict());
  if (optimizer) state.add_all("optimizer.", optimizer->state_dict());
  if (scheduler) state.add_all("scheduler.", scheduler->state_dict());
  for (const auto& g : generators) state.add("rng." + g.first, generator_state(*g.second));
  state.add_integer("step", step);
  state.add_integer("epoch", epoch);
  return state;
}

void TrainingState::check_state_dict(const StateDict& state) const {
  check(model != nullptr, "load_checkpoint", "a TrainingState needs a model");
  model->check_state_dict(state.with_prefix("model."));
  bool has_optimizer = !state.with_prefix("optimizer.").empty();
  check(has_optimizer == (optimizer != nullptr), "load_checkpoint", "the checkpoint ",
        has_optimizer ? "has" : "has no", " optimizer state but the run ",
        optimizer ? "has an optimizer" : "has none");
  if (optimizer) optimizer->check_state_dict(state.with_prefix("optimizer."));
  bool has_scheduler = !state.with_prefix("scheduler.").empty();
  check(has_scheduler == (scheduler != nullptr), "load_checkpoint", "the checkpoint ",
        has_scheduler ? "has" : "has no", " scheduler state but the run ",
        scheduler ? "has a scheduler" : "has none");
  if (scheduler) scheduler->check_state_dict(state.with_prefix("scheduler."));
  std::vector<std::string> known = {"step", "epoch"};
  for (const auto& g : generators) {
    known.push_back("rng." + g.first);
    const Tensor* saved = state.find("rng." + g.first);
    check(saved != nullptr, "load_checkpoint", "the checkpoint has no state for generator '",
          g.first, "'");
    generator_state_from(*saved, g.first);
  }
  check(expect_integer(state, "step", "load_checkpoint") >= 0, "load_checkpoint", "negative step");
  check(expect_integer(state, "epoch", "load_checkpoint") >= 0, "load_checkpoint",
        "negative epoch");
  for (const auto& e : state)
    if (e.first.compare(0, 6, "model.") != 0 && e.first.compare(0, 10, "optimizer.") != 0 &&
        e.first.compare(0, 10, "scheduler.") != 0)
      check(std::find(known.begin(), known.end(), e.first) != known.end(), "load_checkpoint",
            "unexpected entry '", e.first, "'");
}

void TrainingState::load_state_dict(const StateDict& state) {
  check_state_dict(state);  // everything is checked before anything changes
  model->load_state_dict(state.with_prefix("model."));
  if (optimizer) optimizer->load_state_dict(state.with_prefix("optimizer."));
  if (scheduler) scheduler->load_state_dict(state.with_prefix("scheduler."));
  for (const auto& g : generators)
    g.second->set_state(generator_state_from(*state.find("rng." + g.first), g.first));
  step = expect_integer(state, "step", "load_checkpoint");
  epoch = expect_integer(state, "epoch", "load_checkpoint");
}

void save_checkpoint(const std::string& path, const TrainingState& state) {
  write_state_dict(path, state.state_dict());
}

void load_checkpoint(const std::string& path, TrainingState& state) {
  StateDict saved = read_state_dict(path);
  try {
    state.load_state_dict(saved);
  } catch (const Error& e) {
    throw Error(std::string(e.what()) + " (in checkpoint " + path + "; nothing was loaded)");
  }
}

}  // namespace tg
