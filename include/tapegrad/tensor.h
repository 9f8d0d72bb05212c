// tapegrad/tensor.h — Tensor: shape, dtype, device and storage, plus the autograd fields the tape
// needs. A Tensor is a cheap handle (one shared_ptr); copies share the same data.
//
// Layout: always contiguous, row-major. reshape() and detach() are views that share storage;
// every other op writes a new tensor. Keeping one layout keeps every kernel a flat loop.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <iosfwd>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tapegrad/dtype.h"
#include "tapegrad/shape.h"

namespace tg {

// A block of memory owned by a backend's caching allocator; returned to it on destruction.
//
// `version` counts the in-place writes into it (fill_, copy_, set, optimizer steps, loading a
// state dict; see Tensor::bump_version). Views of one storage (reshape, detach) share it, so a
// tape entry that saved a tensor can tell in backward whether its values have changed since.
struct Storage {
  void* data = nullptr;
  size_t bytes = 0;
  Device device;
  uint64_t version = 0;
  const char* last_write = nullptr;  // the in-place op that last bumped `version`
  Storage(size_t bytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
};

struct TensorImpl;
class Tape;

// What a tensor recorded by an op knows of its tape: which one (compared, never dereferenced),
// the recording thread, and the generation. Every tensor recorded in one generation shares one
// of these; the tape watches it through a weak_ptr, so when the last of them is gone the tape
// knows that nothing outside it can reach its entries (Tape::record releases them then).
struct TapeRecording {
  const Tape* tape = nullptr;
  std::thread::id thread;
  uint64_t generation = 0;
};

struct PrintOptions;  // below: how tensors print

class Tensor {
 public:
  Tensor() = default;  // an undefined tensor: defined() is false
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const;
  int dim() const { return shape().rank(); }
  int64_t size(int axis) const;  // negative axes count from the end
  int64_t numel() const;
  DType dtype() const;
  Device device() const;

  // --- reading values (copies to the host if needed) ---
  double item() const;                                  // numel() must be 1
  double at(std::initializer_list<int64_t> index) const;
  std::vector<double> to_vector() const;                // all elements, row-major
  std::string to_string() const;                        // tensor([[1.0000, 2.0000]], f32)
  std::string to_string(const PrintOptions& options) const;  // with other print options

  // --- raw access for kernels, tests and I/O (CPU only; T must match dtype) ---
  template <class T> T* data();
  template <class T> const T* data() const;
  void* raw_data();
  const void* raw_data() const;

  // --- writing values in place: never recorded on the tape ---
  // Each bumps the storage's version, so a backward that needs the old values raises instead of
  // computing a wrong gradient (PyTorch's "modified by an inplace operation").
  void set(std::initializer_list<int64_t> index, double value);
  Tensor& fill_(double value);
  Tensor& copy_(const Tensor& source);  // same shape; converts dtype
  // For code that writes through raw_data()/data<T>() (kernels' in-place updates, optimizer
  // steps): call it after the write, naming the op, as the methods above do.
  Tensor& bump_version(const char* op);
  uint64_t version() const;             // in-place writes into this tensor's storage so far

  // --- copies and views ---
  // clone() and to() are recorded like any op when gradients are wanted (to(DType::i64) ends
  // the gradient's path); detach() is the way to a copy without history: detach().clone().
  Tensor clone() const;                 // new storage, same values
  Tensor detach() const;                // shares storage, cut off from the tape
  Tensor to(DType dtype) const;
  Tensor to(Device device) const;       // recorded: the gradient goes back to this device
  Tensor cpu() const { return to(Device::cpu_device()); }

  // --- autograd ---
  bool requires_grad() const;
  // Marks a leaf tensor as a variable whose gradient backward() will accumulate into grad().
  Tensor& set_requires_grad(bool requires_grad = true);
  bool is_leaf() const;                 // not produced by a recorded op
  // A leaf's accumulated gradient: undefined until a backward reaches it. A non-leaf has one
  // only after retain_grad(); asking any other raises (its gradient is not kept).
  Tensor grad() const;
  // Keeps the gradient the next backward computes for this non-leaf (recorded) tensor in its
  // grad(), accumulated like a leaf's. Call it after the op that made the tensor, before
  // backward; a no-op on a leaf.
  Tensor& retain_grad();
  bool retains_grad() const;
  void set_grad(const Tensor& grad);
  void zero_grad();                     // forgets the gradient (the next backward starts afresh)
  // A name shown by tape().print() and to_dot(); purely cosmetic.
  Tensor& set_name(const std::string& name);
  const std::string& name() const;

  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool same(const Tensor& other) const { return impl_ == other.impl_; }

 private:
  std::shared_ptr<TensorImpl> impl_;
};

// The state behind a Tensor handle. Autograd fields are owned by the tape (tape.cpp).
struct TensorImpl {
  Shape shape;
  DType dtype = DType::f32;
  Device device;
  std::shared_ptr<Storage> storage;
  size_t offset_bytes = 0;  // views start partway into a storage

  bool requires_grad = false;
  bool is_leaf = true;           // false once produced by a recorded op
  int64_t tape_index = -1;       // this tensor's entry on the tape (leaves get one on first use)
  uint64_t tape_generation = 0;  // which recording that index belongs to (see Tape::clear)
  std::shared_ptr<const TapeRecording> recording;  // recorded tensors only (see TapeRecording)
  bool retains_grad = false;     // a non-leaf whose gradient backward keeps (retain_grad)
  Tensor grad;                   // accumulated gradient (leaves, and retain_grad non-leaves)
  std::string name;
};

// How tensors print (torch.set_printoptions): `precision` digits after the point (fixed, or
// scientific for a wide range of magnitudes), and past `threshold` elements only the first and
// last `edge_items` of each dimension. operator<< and to_string() use the current options.
struct PrintOptions {
  int precision = 4;
  int64_t threshold = 1000;
  int64_t edge_items = 3;
};
void set_print_options(const PrintOptions& options);  // throws on a negative field
PrintOptions print_options();

std::ostream& operator<<(std::ostream& os, const Tensor& tensor);

// --- creating tensors ---
Tensor empty(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu_device());
Tensor zeros(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu_device());
Tensor ones(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu_device());
Tensor full(const Shape& shape, double value, DType dtype = DType::f32,
            Device device = Device::cpu_device());
Tensor zeros_like(const Tensor& like);
Tensor ones_like(const Tensor& like);
Tensor full_like(const Tensor& like, double value);
Tensor scalar(double value, DType dtype = DType::f32, Device device = Device::cpu_device());
// Values in row-major order; the shape defaults to 1-D [values.size()].
Tensor tensor(const std::vector<double>& values, DType dtype = DType::f32);
Tensor tensor(const std::vector<double>& values, const Shape& shape, DType dtype = DType::f32);
Tensor arange(int64_t n, DType dtype = DType::f32);  // 0, 1, ..., n-1
Tensor index_tensor(const std::vector<int64_t>& indices, const Shape& shape = {});  // i64

// Extern template declarations for the typed accessors (defined in tensor.cpp).
extern template float* Tensor::data<float>();
extern template double* Tensor::data<double>();
extern template int64_t* Tensor::data<int64_t>();
extern template const float* Tensor::data<float>() const;
extern template const double* Tensor::data<double>() const;
extern template const int64_t* Tensor::data<int64_t>() const;

}  // namespace tg
