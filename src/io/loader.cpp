// src/io/loader.cpp — DataLoader: mini-batches in a shuffled order, copied with the backend's
// gather kernel (no tape: batches are data, not something to differentiate).
#include <algorithm>

#include "tapegrad/backend.h"
#include "tapegrad/data.h"
#include "tapegrad/error.h"

namespace tg::data {

DataLoader::DataLoader(Tensor inputs, Tensor targets, int64_t batch_size, Generator* shuffle,
                       bool drop_last)
    : inputs_(std::move(inputs)),
      targets_(std::move(targets)),
      batch_size_(batch_size),
      shuffle_(shuffle),
      drop_last_(drop_last) {
  check(inputs_.defined() && inputs_.dim() >= 1, "DataLoader", "inputs must be a tensor [n, ...]");
  check(batch_size > 0, "DataLoader", "batch size must be positive, got ", batch_size);
  if (targets_.defined()) {
    check(targets_.dim() >= 1 && targets_.size(0) == inputs_.size(0), "DataLoader", "inputs ",
          inputs_.shape(), " and targets ", targets_.shape(), " differ in their first dimension");
    check(targets_.device() == inputs_.device(), "DataLoader", "inputs are on ", inputs_.device(),
          ", targets on ", targets_.device());
  }
}

int64_t DataLoader::batch_count() const {
  int64_t n = sample_count();  // n + batch_size - 1 could overflow: a batch size may be huge
  return n / batch_size_ + (!drop_last_ && n % batch_size_ != 0 ? 1 : 0);
}

void DataLoader::start_epoch() {
  order_ = Tensor();  // its memory is reused for the new order: steady state needs no new block
  Tensor order =
      shuffle_ ? randperm(sample_count(), *shuffle_) : arange(sample_count(), DType::i64);
  order_ = order.to(inputs_.device());
}

namespace {
// rows[i] = source[index[i]] along the first axis                 source: [n, ...] -> [count, ...]
Tensor select_rows(const Tensor& source, const int64_t* index, int64_t count) {
  Shape shape = source.shape();
  int64_t inner = source.numel() / shape[0];
  int64_t n = shape[0];
  shape[0] = count;
  Tensor rows = empty(shape, source.dtype(), source.device());
  backend_for(source.device())
      .gather(source.dtype(), source.raw_data(), index, rows.raw_data(), 1, n, count, inner, true);
  return rows;
}
}  // namespace

Batch DataLoader::batch(int64_t index) const {
  check(order_.defined(), "DataLoader::batch", "call start_epoch() before asking for batches");
  check(index >= 0 && index < batch_count(), "DataLoader::batch", "batch ", index,
        " is out of range [0, ", batch_count(), ")");
  int64_t start = index * batch_size_;
  int64_t count = std::min(batch_size_, sample_count() - start);
  // order_ holds a permutation of 0..n-1, so every index is in range.
  const int64_t* rows = static_cast<const int64_t*>(order_.raw_data()) + start;
  Batch batch;
  batch.inputs = select_rows(inputs_, rows, count);
  if (targets_.defined()) batch.targets = select_rows(targets_, rows, count);
  return batch;
}

}  // namespace tg::data
