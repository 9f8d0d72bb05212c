// tapegrad/shape.h — Shape: the sizes of a tensor's dimensions, stored inline (no heap).
//
// Tensors are contiguous and row-major, so a shape is all the layout there is: the element at
// index (i0, i1, ..., in) lives at offset ((i0*d1 + i1)*d2 + ...)*dn + in.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <iosfwd>
#include <string>
#include <vector>

namespace tg {

constexpr int kMaxRank = 8;

class Shape {
 public:
  Shape() = default;
  Shape(std::initializer_list<int64_t> sizes);
  explicit Shape(const std::vector<int64_t>& sizes);

  int rank() const { return rank_; }
  int64_t operator[](int axis) const { return sizes_[axis]; }
  int64_t& operator[](int axis) { return sizes_[axis]; }
  const int64_t* begin() const { return sizes_; }
  const int64_t* end() const { return sizes_ + rank_; }

  int64_t numel() const;                      // product of sizes (1 for a scalar)
  void push_back(int64_t size);               // throws beyond kMaxRank
  std::vector<int64_t> to_vector() const { return {begin(), end()}; }
  std::string to_string() const;              // "[2, 3]"

  // Normalises a possibly negative axis (-1 = last) and checks it: throws naming `op`.
  int axis(int axis, const char* op) const;

  // Row-major strides in elements: stride[rank-1] = 1.
  void strides(int64_t* out) const;

  friend bool operator==(const Shape& a, const Shape& b);
  friend bool operator!=(const Shape& a, const Shape& b) { return !(a == b); }

 private:
  int64_t sizes_[kMaxRank] = {};
  int rank_ = 0;
};

std::ostream& operator<<(std::ostream& os, const Shape& shape);

// NumPy broadcasting: align trailing dimensions; each pair must be equal or contain a 1.
// Throws naming `op` when the shapes are incompatible.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

}  // namespace tg
