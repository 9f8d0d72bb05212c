// tests/test_data.cpp — IDX files (round trips, every kind of damage rejected with a message that
// names the file), the MNIST-layout loader, and the shuffling mini-batch loader.
#include <algorithm>
#include <climits>
#include <cmath>
#include <limits>
#include <set>

#include <zlib.h>

#include "file_helpers.h"
#include "helpers.h"

using namespace tg;
using tgtest::require_error;
using tgtest::TempDir;

namespace {
// A tiny MNIST-layout split: n images of 3×4 pixels and n labels in 0..9.
void write_split(const TempDir& dir, const std::string& prefix, int64_t n, bool gzip,
                 int64_t label_count = -1) {
  std::vector<double> pixels(n * 12), labels(label_count < 0 ? n : label_count);
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = (i * 37) % 256;
  for (size_t i = 0; i < labels.size(); ++i) labels[i] = i % 10;
  std::string ext = gzip ? ".gz" : "";
  data::write_idx(dir.file(prefix + "-images-idx3-ubyte" + ext), tensor(pixels, {n, 3, 4}));
  data::write_idx(dir.file(prefix + "-labels-idx1-ubyte" + ext),
                  tensor(labels, {static_cast<int64_t>(labels.size())}));
}
}  // namespace

TEST_CASE("IDX files round-trip for every element type, raw and gzip", "[data]") {
  TempDir dir;
  Tensor values = tensor({0, 1, 2, 100, 127, 5}, {2, 3});
  for (auto type : {data::IdxType::u8, data::IdxType::i8, data::IdxType::i16, data::IdxType::i32,
                    data::IdxType::f32, data::IdxType::f64})
    for (std::string name : {"a.idx", "a.idx.gz"}) {
      data::write_idx(dir.file(name), values, type);
      Tensor back = data::read_idx(dir.file(name), DType::f64);
      REQUIRE(back.shape() == Shape{2, 3});
      REQUIRE(back.to_vector() == values.to_vector());
    }
  data::write_idx(dir.file("neg.idx"), tensor({-3.5, 1e30}, DType::f64), data::IdxType::f64);
  REQUIRE(data::read_idx(dir.file("neg.idx"), DType::f64).to_vector() ==
          std::vector<double>{-3.5, 1e30});
  data::write_idx(dir.file("neg16.idx"), tensor({-300, 300}), data::IdxType::i16);
  REQUIRE(data::read_idx(dir.file("neg16.idx"), DType::i64).to_vector() ==
          std::vector<double>{-300, 300});
  require_error([&] { data::write_idx(dir.file("bad.idx"), tensor({256})); },
                {"does not fit IDX type u8"});
}

TEST_CASE("read_idx converts and scales: u8 pixels / 255 are the floats nearest p / 255",
          "[data]") {
  TempDir dir;
  std::vector<double> all(256);
  for (int i = 0; i < 256; ++i) all[i] = i;
  data::write_idx(dir.file("pixels.idx"), tensor(all));
  Tensor pixels = data::read_idx(dir.file("pixels.idx"), DType::f32, 1 / 255.0);
  for (int i = 0; i < 256; ++i) REQUIRE(pixels.data<float>()[i] == static_cast<float>(i) / 255.0f);
  REQUIRE(data::read_idx(dir.file("pixels.idx"), DType::i64).dtype() == DType::i64);
}

TEST_CASE("damaged IDX files are rejected with the file name and the problem", "[data]") {
  TempDir dir;
  data::write_idx(dir.file("good.idx"), tensor({1, 2, 3, 4, 5, 6}, {2, 3}));
  std::vector<uint8_t> good = tgtest::read_bytes(dir.file("good.idx"));
  REQUIRE(good.size() == 4 + 8 + 6);
  auto with = [&](const std::string& name, std::vector<uint8_t> bytes) {
    tgtest::write_bytes(dir.file(name), bytes);
    return dir.file(name);
  };
  auto damaged = good;

  std::string path = with("magic.idx", {1, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6});
  require_error([&] { data::read_idx(path); }, {"read_idx", path, "not an IDX file", "bad magic"});
  damaged = good;
  damaged[2] = 0x0A;
  path = with("type.idx", damaged);
  require_error([&] { data::read_idx(path); }, {path, "bad magic", "type code"});
  damaged = good;
  damaged[3] = 0;
  path = with("rank.idx", damaged);
  require_error([&] { data::read_idx(path); }, {path, "rank 0"});
  damaged = good;
  damaged[7] = 0;  // dimension 0 = 0
  path = with("zero.idx", damaged);
  require_error([&] { data::read_idx(path); }, {path, "dimension 0 is 0"});
  path = with("short_header.idx", {0, 0, 8});
  require_error([&] { data::read_idx(path); }, {path, "truncated", "4-byte header"});
  path = with("short_dims.idx", {0, 0, 8, 2, 0, 0, 0, 2});
  require_error([&] { data::read_idx(path); }, {path, "truncated inside the header"});
  damaged = good;
  damaged.pop_back();
  path = with("truncated.idx", damaged);
  require_error([&] { data::read_idx(path); }, {path, "truncated", "[2, 3] u8 = 6 bytes", "has 5"});
  damaged = good;
  damaged.push_back(7);
  path = with("trailing.idx", damaged);
  require_error([&] { data::read_idx(path); }, {path, "1 unexpected bytes after"});
  damaged = good;
  damaged[4] = 0x7f;  // claims 2^31 rows of 3 bytes
  path = with("huge.idx", damaged);
  require_error([&] { data::read_idx(path); }, {path, "truncated"});
  path = dir.file("missing.idx");
  require_error([&] { data::read_idx(path); }, {path, "cannot open", "No such file"});
}

TEST_CASE("damaged gzip IDX files are rejected too", "[data]") {
  TempDir dir;
  std::vector<double> many(5000);
  for (size_t i = 0; i < many.size(); ++i) many[i] = (i * 7919) % 256;
  data::write_idx(dir.file("good.idx.gz"), tensor(many, {50, 100}));
  std::vector<uint8_t> good = tgtest::read_bytes(dir.file("good.idx.gz"));

  std::vector<uint8_t> cut(good.begin(), good.begin() + good.size() / 2);
  tgtest::write_bytes(dir.file("cut.idx.gz"), cut);
  require_error([&] { data::read_idx(dir.file("cut.idx.gz")); },
                {dir.file("cut.idx.gz"), "truncated gzip data", "unexpected end of file"});

  std::vector<uint8_t> bad_crc = good;
  bad_crc[bad_crc.size() - 6] ^= 1;  // the gzip trailer's CRC-32 of the data
  tgtest::write_bytes(dir.file("crc.idx.gz"), bad_crc);
  require_error([&] { data::read_idx(dir.file("crc.idx.gz")); },
                {"corrupt gzip data", "incorrect data check"});

  std::vector<uint8_t> flipped = good;
  for (size_t i = 20; i < flipped.size() - 10; i += 7) flipped[i] ^= 0x5a;
  tgtest::write_bytes(dir.file("flipped.idx.gz"), flipped);
  require_error([&] { data::read_idx(dir.file("flipped.idx.gz")); },
                {dir.file("flipped.idx.gz"), "corrupt"});

  data::write_idx(dir.file("plain.idx"), tensor({1, 2}));
  tgtest::write_bytes(dir.file("plain.idx.gz"), tgtest::read_bytes(dir.file("plain.idx")));
  require_error([&] { data::read_idx(dir.file("plain.idx.gz")); }, {"not gzip data"});

  // A valid gzip stream whose IDX header claims far more data than deflate could hold.
  data::write_idx(dir.file("tiny.idx"), tensor({1, 2}));
  std::vector<uint8_t> header_lie = tgtest::read_bytes(dir.file("tiny.idx"));
  header_lie[4] = 0x7f;
  tgtest::write_bytes(dir.file("lie.idx"), header_lie);
  data::write_idx(dir.file("lie.idx.gz"), tensor({0}));  // placeholder, overwritten below
  {
    gzFile gz = gzopen(dir.file("lie.idx.gz").c_str(), "wb");
    gzwrite(gz, header_lie.data(), static_cast<unsigned>(header_lie.size()));
    gzclose(gz);
  }
  require_error([&] { data::read_idx(dir.file("lie.idx.gz")); },
                {"more than a", "gzip file can hold"});
}

TEST_CASE("load_mnist reads both splits, raw or gzip, and checks their agreement", "[data]") {
  TempDir dir;
  write_split(dir, "train", 20, false);
  write_split(dir, "t10k", 7, true);
  data::Dataset train = data::load_mnist(dir.path(), "train");
  data::Dataset test = data::load_mnist(dir.path(), "test");
  REQUIRE(train.images.shape() == Shape{20, 3, 4});
  REQUIRE(train.labels.shape() == Shape{20});
  REQUIRE(train.labels.dtype() == DType::i64);
  REQUIRE(test.size() == 7);
  REQUIRE(train.images.at({0, 0, 1}) == Approx(37 / 255.0));
  REQUIRE(test.labels.at({3}) == 3);

  require_error([&] { data::load_mnist(dir.path(), "valid"); }, {"split must be"});
  require_error([&] { data::load_mnist(dir.file("nowhere"), "train"); },
                {"data directory", "nowhere", "does not exist"});
  TempDir empty_dir;
  require_error([&] { data::load_mnist(empty_dir.path(), "train"); },
                {"missing train-images-idx3-ubyte(.gz)", empty_dir.path()});
  TempDir mismatched;
  write_split(mismatched, "train", 10, false, 9);
  require_error([&] { data::load_mnist(mismatched.path(), "train"); },
                {"has 10 images but", "has 9 labels"});
  TempDir wrong_rank;
  data::write_idx(wrong_rank.file("train-images-idx3-ubyte"), tensor({1, 2, 3, 4}, {2, 2}));
  data::write_idx(wrong_rank.file("train-labels-idx1-ubyte"), tensor({1, 2}));
  require_error([&] { data::load_mnist(wrong_rank.path(), "train"); },
                {"expected images of rank 3"});
}

TEST_CASE("the loader visits every sample once per epoch, in a new order each epoch", "[data]") {
  const int64_t n = 10;
  Tensor inputs = reshape(arange(n * 2), {n, 2});
  Tensor targets = arange(n, DType::i64);
  Generator shuffle(3);
  data::DataLoader loader(inputs, targets, 4, &shuffle);
  REQUIRE(loader.batch_count() == 3);
  std::vector<std::vector<double>> epochs;
  for (int epoch = 0; epoch < 2; ++epoch) {
    loader.start_epoch();
    std::vector<double> seen;
    for (int64_t b = 0; b < loader.batch_count(); ++b) {
      data::Batch batch = loader.batch(b);
      REQUIRE(batch.size() == (b < 2 ? 4 : 2));
      for (int64_t i = 0; i < batch.size(); ++i) {
        double t = batch.targets.at({i});
        REQUIRE(batch.inputs.at({i, 0}) == 2 * t);  // rows stay paired with their targets
        REQUIRE(batch.inputs.at({i, 1}) == 2 * t + 1);
        seen.push_back(t);
      }
    }
    std::vector<double> sorted = seen;
    std::sort(sorted.begin(), sorted.end());
    for (int64_t i = 0; i < n; ++i) REQUIRE(sorted[i] == i);
    epochs.push_back(seen);
  }
  REQUIRE(epochs[0] != epochs[1]);

  // The same generator state gives the same batches (what resuming relies on).
  Generator replay(3);
  data::DataLoader again(inputs, targets, 4, &replay);
  again.start_epoch();
  REQUIRE(again.batch(0).targets.to_vector() ==
          std::vector<double>(epochs[0].begin(), epochs[0].begin() + 4));
}

TEST_CASE("without a generator batches come in order; drop_last drops the remainder", "[data]") {
  Tensor inputs = reshape(arange(10), {5, 2});
  data::DataLoader ordered(inputs, Tensor(), 2, nullptr, true);
  REQUIRE(ordered.batch_count() == 2);
  ordered.start_epoch();
  REQUIRE(ordered.batch(1).inputs.to_vector() == std::vector<double>{4, 5, 6, 7});
  REQUIRE_FALSE(ordered.batch(1).targets.defined());
  require_error([&] { ordered.batch(2); }, {"batch 2 is out of range [0, 2)"});
  data::DataLoader fresh(inputs, Tensor(), 2);
  require_error([&] { fresh.batch(0); }, {"call start_epoch()"});
  require_error([&] { data::DataLoader(inputs, arange(4), 2); },
                {"differ in their first dimension"});
}

TEST_CASE("a loader in steady state allocates nothing from the system", "[data]") {
  Tensor inputs = reshape(arange(300 * 8), {300, 8});
  Generator shuffle(1);
  data::DataLoader loader(inputs, arange(300, DType::i64), 32, &shuffle);
  auto epoch = [&] {
    loader.start_epoch();
    for (int64_t b = 0; b < loader.batch_count(); ++b) loader.batch(b);
  };
  epoch();
  uint64_t before = backend_for(Device::cpu_device()).memory_stats().system_allocations;
  epoch();
  epoch();
  REQUIRE(backend_for(Device::cpu_device()).memory_stats().system_allocations == before);
}

TEST_CASE("read_idx as i64 refuses values outside the i64 range instead of casting them",
          "[data]") {
  TempDir dir;
  for (double huge : {1e300, 0x1p63, -0x1p64, -1e300}) {
    INFO(huge);
    data::write_idx(dir.file("huge.idx"), tensor({1.0, huge}, DType::f64), data::IdxType::f64);
    require_error([&] { data::read_idx(dir.file("huge.idx"), DType::i64); },
                  {"read_idx", "huge.idx", "element 1", "outside the i64 range"});
  }
  data::write_idx(dir.file("edge.idx"), tensor({-0x1p63, 0x1p62}, DType::f64), data::IdxType::f64);
  Tensor edge = data::read_idx(dir.file("edge.idx"), DType::i64);
  REQUIRE(edge.data<int64_t>()[0] == INT64_MIN);
  REQUIRE(edge.data<int64_t>()[1] == int64_t(1) << 62);
  // Scaling can push a value out of range too.
  data::write_idx(dir.file("small.idx"), tensor({3.0}), data::IdxType::i32);
  require_error([&] { data::read_idx(dir.file("small.idx"), DType::i64, 1e300); },
                {"outside the i64 range"});
}

TEST_CASE("a loader whose batch size exceeds the data gives one batch of everything", "[data]") {
  Tensor inputs = reshape(arange(10), {5, 2});
  for (int64_t batch_size : {int64_t(5), int64_t(6), INT64_MAX / 2, INT64_MAX}) {
    INFO(batch_size);
    data::DataLoader loader(inputs, arange(5, DType::i64), batch_size);
    REQUIRE(loader.batch_count() == 1);
    loader.start_epoch();
    REQUIRE(loader.batch(0).size() == 5);
    REQUIRE(loader.batch(0).targets.to_vector() == std::vector<double>{0, 1, 2, 3, 4});
    data::DataLoader dropping(inputs, Tensor(), batch_size, nullptr, true);
    REQUIRE(dropping.batch_count() == (batch_size == 5 ? 1 : 0));
  }
}

TEST_CASE("write_csv writes a header and exact, shortest numbers", "[data]") {
  TempDir dir;
  const std::string path = dir.file("table.csv");
  data::write_csv(path, {"epoch", "loss, train", "say \"hi\""},
                  {{1, 0.1, 1e-7}, {2, -2.5, 1.0 / 3.0},
                   {3, std::nan(""), -std::numeric_limits<double>::infinity()}});
  std::vector<uint8_t> bytes = tgtest::read_bytes(path);
  REQUIRE(std::string(bytes.begin(), bytes.end()) ==
          "epoch,\"loss, train\",\"say \"\"hi\"\"\"\n"
          "1,0.1,1e-07\n"
          "2,-2.5,0.3333333333333333\n"
          "3,nan,-inf\n");
  require_error([&] { data::write_csv(path, {"a", "b"}, {{1, 2}, {3}}); },
                {"write_csv", path, "row 1 has 1 values for 2 columns"});
  require_error([&] { data::write_csv(path, {}, {}); }, {"write_csv", "at least one column"});
  data::write_csv(path, {"only"}, {});
  bytes = tgtest::read_bytes(path);
  REQUIRE(std::string(bytes.begin(), bytes.end()) == "only\n");
}
