// tapegrad/data.h — datasets from IDX files (the MNIST format) and a shuffling mini-batch loader.
//
//   tg::data::Dataset train = tg::data::load_mnist("/usr/share/datasets/fashion-mnist", "train");
//   tg::Generator shuffle(seed, 1);
//   tg::data::DataLoader loader(train.images, train.labels, 128, &shuffle);
//   for (int epoch = 0; epoch < epochs; ++epoch) {
//     loader.start_epoch();                     // draws this epoch's order
//     for (int64_t b = 0; b < loader.batch_count(); ++b) {
//       tg::data::Batch batch = loader.batch(b);  // inputs [128, 28, 28], targets [128]
//       ...
//     }
//   }
//
// Every file read is validated (magic, element type, rank, dimensions, length) before its data is
// trusted; any problem is a tg::Error that names the file and says what is wrong. Every file
// written (IDX, CSV) appears complete or not at all (see checkpoint.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tapegrad/random.h"
#include "tapegrad/tensor.h"

namespace tg::data {

// ---------------------------------------------------------------- IDX files
// The format of http://yann.lecun.com/exdb/mnist/: bytes 0-1 zero, byte 2 the element type,
// byte 3 the rank, then one big-endian u32 per dimension, then the elements, big-endian, row-major.
enum class IdxType : uint8_t {
  u8 = 0x08, i8 = 0x09, i16 = 0x0B, i32 = 0x0C, f32 = 0x0D, f64 = 0x0E
};

// Reads an IDX file, raw or gzip-compressed (a name ending in ".gz"), into a tensor of the file's
// dimensions with every element converted to `dtype` and multiplied by `scale`
// (read_idx(images, DType::f32, 1 / 255.0) gives pixels in [0, 1]). As i64, every scaled value
// must be an integer in the i64 range.
Tensor read_idx(const std::string& path, DType dtype = DType::f32, double scale = 1.0);

// Writes `values` as an IDX file of element type `type` (gzip-compressed when the name ends in
// ".gz"), atomically. Integer types require every value to be an integer in the type's range;
// one that is not leaves an existing file as it was.
void write_idx(const std::string& path, const Tensor& values, IdxType type = IdxType::u8);

// ---------------------------------------------------------------- CSV files

// Writes a table of numbers as CSV (RFC 4180): a header line of column names (quoted where they
// need it), then one line per row, each with one number per column. Numbers are written in the
// shortest form that reads back as the same double ("0.1", "12", "1e-07", "nan", "inf"), so
// nothing is lost and integers look like integers.
//   tg::data::write_csv("out/loss.csv", {"epoch", "loss"}, {{1, 0.52}, {2, 0.31}});
void write_csv(const std::string& path, const std::vector<std::string>& columns,
               const std::vector<std::vector<double>>& rows);

// ---------------------------------------------------------------- MNIST-format datasets

struct Dataset {
  Tensor images;  // [n, rows, columns] f32 in [0, 1]
  Tensor labels;  // [n] i64
  int64_t size() const { return images.defined() ? images.size(0) : 0; }
};

// Loads split "train" (train-images-idx3-ubyte, train-labels-idx1-ubyte) or "test" (t10k-...)
// from `directory`, each file raw or with ".gz". Works for MNIST, Fashion-MNIST and any dataset in
// that layout. Checks the ranks (3 and 1) and that the image and label counts agree.
Dataset load_mnist(const std::string& directory, const std::string& split,
                   Device device = Device::cpu_device());

// ---------------------------------------------------------------- mini-batches

struct Batch {
  Tensor inputs;   // [b, ...]
  Tensor targets;  // [b, ...] (undefined when the loader has no targets)
  int64_t size() const { return inputs.size(0); }
};

// Cuts (inputs, targets) into mini-batches along the first axis, in a fresh random order each
// epoch when given a generator. The order comes from randperm(n, generator), so a generator
// restored from a checkpoint reproduces the same batches. Batches are copies on the inputs'
// device; in steady state they come from the caching allocator, never from the system.
class DataLoader {
 public:
  DataLoader(Tensor inputs, Tensor targets, int64_t batch_size, Generator* shuffle = nullptr,
             bool drop_last = false);

  int64_t sample_count() const { return inputs_.size(0); }
  int64_t batch_size() const { return batch_size_; }
  // Batches per epoch: ceil(n / batch_size), or floor with drop_last.
  int64_t batch_count() const;
  // Draws this epoch's order (0, 1, ..., n-1 without a generator). Call before each epoch.
  void start_epoch();
  // Batch `index` of the current epoch; the last one may be smaller unless drop_last.
  Batch batch(int64_t index) const;

 private:
  Tensor inputs_, targets_;
  int64_t batch_size_;
  Generator* shuffle_;
  bool drop_last_;
  Tensor order_;  // i64 [n] on the inputs' device
};

}  // namespace tg::data
