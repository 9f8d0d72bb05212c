// tapegrad/dtype.h — element types and devices.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <string>

namespace tg {

// f32 and f64 are the differentiable types; i64 holds indices and labels (gather, one_hot,
// cross_entropy targets) and is accepted only by the ops that document it.
enum class DType : uint8_t { f32, f64, i64 };

size_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);                 // "f32", "f64", "i64"
inline bool is_floating(DType dtype) { return dtype != DType::i64; }
std::ostream& operator<<(std::ostream& os, DType dtype);

// Where a tensor's storage lives. Only the CPU exists today; the CUDA backend registers itself
// with kind == cuda (see backend.h).
struct Device {
  enum Kind : uint8_t { cpu, cuda };
  Kind kind = cpu;
  int index = 0;

  static Device cpu_device() { return {cpu, 0}; }
  static Device cuda_device(int index = 0) { return {cuda, index}; }
  bool is_cpu() const { return kind == cpu; }
  std::string to_string() const;                     // "cpu", "cuda:0"
  friend bool operator==(Device a, Device b) { return a.kind == b.kind && a.index == b.index; }
  friend bool operator!=(Device a, Device b) { return !(a == b); }
};

std::ostream& operator<<(std::ostream& os, Device device);

// Maps a C++ element type to its DType: dtype_of<float>() == DType::f32.
template <class T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::f32; }
template <> constexpr DType dtype_of<double>() { return DType::f64; }
template <> constexpr DType dtype_of<int64_t>() { return DType::i64; }

}  // namespace tg
