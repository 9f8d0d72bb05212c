// src/tensor/shape.cpp — Shape, broadcasting rules, dtype and device names.
#include "tapegrad/shape.h"

#include <ostream>
#include <sstream>

#include "tapegrad/dtype.h"
#include "tapegrad/error.h"

namespace tg {

Shape::Shape(std::initializer_list<int64_t> sizes) {
  for (int64_t size : sizes) push_back(size);
}

Shape::Shape(const std::vector<int64_t>& sizes) {
  for (int64_t size : sizes) push_back(size);
}

int64_t Shape::numel() const {
  // A zero anywhere makes the count 0 however large the other sizes are; otherwise the product
  // must fit int64 (a requested shape such as reshape's is not yet bounded by real memory).
  for (int i = 0; i < rank_; ++i)
    if (sizes_[i] == 0) return 0;
  int64_t n = 1;
  for (int i = 0; i < rank_; ++i)
    check(!__builtin_mul_overflow(n, sizes_[i], &n), "shape", *this,
          " has more elements than a 64-bit count can hold");
  return n;
}

void Shape::push_back(int64_t size) {
  check(rank_ < kMaxRank, "shape", "rank above ", kMaxRank, " is not supported");
  check(size >= 0 || size == -1, "shape", "negative size ", size);
  sizes_[rank_++] = size;
}

std::string Shape::to_string() const {
  std::ostringstream os;
  os << *this;
  return os.str();
}

int Shape::axis(int axis, const char* op) const {
  check(rank_ > 0, op, "axis ", axis, " does not exist: the tensor is a scalar (shape [])");
  int normalised = axis < 0 ? axis + rank_ : axis;
  check(normalised >= 0 && normalised < rank_, op, "axis ", axis, " is out of range for shape ",
        *this, " (expected -", rank_, " <= axis < ", rank_, ")");
  return normalised;
}

void Shape::strides(int64_t* out) const {
  int64_t stride = 1;
  for (int i = rank_ - 1; i >= 0; --i) {
    out[i] = stride;
    stride *= sizes_[i];
  }
}

bool operator==(const Shape& a, const Shape& b) {
  if (a.rank_ != b.rank_) return false;
  for (int i = 0; i < a.rank_; ++i)
    if (a.sizes_[i] != b.sizes_[i]) return false;
  return true;
}

std::ostream& operator<<(std::ostream& os, const Shape& shape) {
  os << '[';
  for (int i = 0; i < shape.rank(); ++i) os << (i ? ", " : "") << shape[i];
  return os << ']';
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  if (a == b) return a;
  int rank = a.rank() > b.rank() ? a.rank() : b.rank();
  Shape out;
  for (int i = 0; i < rank; ++i) {
    int ia = i - (rank - a.rank()), ib = i - (rank - b.rank());
    int64_t sa = ia >= 0 ? a[ia] : 1, sb = ib >= 0 ? b[ib] : 1;
    check(sa == sb || sa == 1 || sb == 1, op, "shapes ", a, " and ", b,
          " cannot be broadcast together (trailing sizes must be equal or 1)");
    out.push_back(sa == 1 ? sb : sa);
  }
  return out;
}

size_t dtype_size(DType dtype) { return dtype == DType::f32 ? 4 : 8; }

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::f32: return "f32";
    case DType::f64: return "f64";
    case DType::i64: return "i64";
  }
  return "?";
}

std::ostream& operator<<(std::ostream& os, DType dtype) { return os << dtype_name(dtype); }

std::string Device::to_string() const {
  return kind == cpu ? "cpu" : "cuda:" + std::to_string(index);
}

std::ostream& operator<<(std::ostream& os, Device device) { return os << device.to_string(); }

}  // namespace tg
