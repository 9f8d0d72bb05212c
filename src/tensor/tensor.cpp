// src/tensor/tensor.cpp — Tensor handles: creation, element access, copies, printing.
#include "tapegrad/tensor.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iomanip>
#include <ostream>
#include <sstream>

#include "tapegrad/backend.h"
#include "tapegrad/error.h"
#include "tapegrad/tape.h"
#include "../kernels/elementwise_math.h"

namespace tg {

Storage::Storage(size_t bytes_, Device device_) : bytes(bytes_), device(device_) {
  data = backend_for(device).allocate(bytes);
}

// A destructor must not throw: if the device's backend is gone (only possible when a test
// unregisters one), the block is left to the process's end rather than freed by nobody.
Storage::~Storage() {
  if (Backend* backend = find_backend(device)) backend->deallocate(data, bytes);
}

// ---------------------------------------------------------------- creation

Tensor empty(const Shape& shape, DType dtype, Device device) {
  // Every tensor's storage comes from here, so checking the byte count once (with overflow
  // checks) keeps a huge shape from wrapping around to a small allocation.
  int64_t bytes = static_cast<int64_t>(dtype_size(dtype));
  for (int64_t size : shape) {
    check(size >= 0, "empty", "shape ", shape, " has a negative size (-1 is only for reshape)");
    check(!__builtin_mul_overflow(bytes, size, &bytes), "empty", "shape ", shape, " of ", dtype,
          " needs more than 2^63 bytes");
  }
  auto impl = std::make_shared<TensorImpl>();
  impl->shape = shape;
  impl->dtype = dtype;
  impl->device = device;
  impl->storage = std::make_shared<Storage>(static_cast<size_t>(bytes), device);
  return Tensor(std::move(impl));
}

namespace {

// The raw copies behind clone() and to(): never recorded.
Tensor converted(const Tensor& x, DType target) {
  Tensor out = empty(x.shape(), target, x.device());
  backend_for(x.device()).convert(x.dtype(), x.raw_data(), target, out.raw_data(), x.numel());
  return out;
}

Tensor moved(const Tensor& x, Device target) {
  if (!x.device().is_cpu() && !target.is_cpu()) return moved(moved(x, Device::cpu_device()), target);
  Tensor out = empty(x.shape(), x.dtype(), target);
  size_t bytes = x.numel() * dtype_size(x.dtype());
  if (x.device().is_cpu())
    backend_for(target).copy_from_host(out.raw_data(), x.raw_data(), bytes);
  else
    backend_for(x.device()).copy_to_host(out.raw_data(), x.raw_data(), bytes);
  return out;
}

}  // namespace

Tensor full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  backend_for(device).fill(dtype, t.raw_data(), t.numel(), value);
  return t;
}

Tensor zeros(const Shape& shape, DType dtype, Device device) { return full(shape, 0, dtype, device); }
Tensor ones(const Shape& shape, DType dtype, Device device) { return full(shape, 1, dtype, device); }
Tensor zeros_like(const Tensor& like) { return zeros(like.shape(), like.dtype(), like.device()); }
Tensor ones_like(const Tensor& like) { return ones(like.shape(), like.dtype(), like.device()); }
Tensor full_like(const Tensor& like, double value) {
  return full(like.shape(), value, like.dtype(), like.device());
}
Tensor scalar(double value, DType dtype, Device device) { return full(Shape{}, value, dtype, device); }

Tensor tensor(const std::vector<double>& values, DType dtype) {
  return tensor(values, Shape{static_cast<int64_t>(values.size())}, dtype);
}

Tensor tensor(const std::vector<double>& values, const Shape& shape, DType dtype) {
  check(shape.numel() == static_cast<int64_t>(values.size()), "tensor", values.size(),
        " values cannot fill shape ", shape, " (", shape.numel(), " elements)");
  Tensor t = empty(shape, DType::f64);
  std::copy(values.begin(), values.end(), t.data<double>());
  return dtype == DType::f64 ? t : converted(t, dtype);
}

Tensor arange(int64_t n, DType dtype) {
  check(n >= 0, "arange", "n must be >= 0, got ", n);
  std::vector<double> values(n);
  for (int64_t i = 0; i < n; ++i) values[i] = static_cast<double>(i);
  return tensor(values, dtype);
}

Tensor index_tensor(const std::vector<int64_t>& indices, const Shape& shape) {
  Shape s = shape.rank() == 0 ? Shape{static_cast<int64_t>(indices.size())} : shape;
  check(s.numel() == static_cast<int64_t>(indices.size()), "index_tensor", indices.size(),
        " indices cannot fill shape ", s);
  Tensor t = empty(s, DType::i64);
  std::copy(indices.begin(), indices.end(), t.data<int64_t>());
  return t;
}

// ---------------------------------------------------------------- properties

static TensorImpl& defined_impl(const std::shared_ptr<TensorImpl>& impl, const char* what) {
  check(impl != nullptr, what, "the tensor is undefined (default-constructed)");
  return *impl;
}

const Shape& Tensor::shape() const { return defined_impl(impl_, "shape").shape; }
int64_t Tensor::size(int axis) const { return shape()[shape().axis(axis, "size")]; }
int64_t Tensor::numel() const { return shape().numel(); }
DType Tensor::dtype() const { return defined_impl(impl_, "dtype").dtype; }
Device Tensor::device() const { return defined_impl(impl_, "device").device; }

void* Tensor::raw_data() {
  TensorImpl& impl = defined_impl(impl_, "data");
  return static_cast<char*>(impl.storage->data) + impl.offset_bytes;
}
const void* Tensor::raw_data() const { return const_cast<Tensor*>(this)->raw_data(); }

template <class T>
T* Tensor::data() {
  check(dtype() == dtype_of<T>(), "data", "the tensor holds ", dtype(), ", not ",
        dtype_of<T>());
  check(device().is_cpu(), "data", "the tensor lives on ", device(),
        "; copy it with .to(Device::cpu_device()) first");
  return static_cast<T*>(raw_data());
}
template <class T>
const T* Tensor::data() const {
  return const_cast<Tensor*>(this)->data<T>();
}
template float* Tensor::data<float>();
template double* Tensor::data<double>();
template int64_t* Tensor::data<int64_t>();
template const float* Tensor::data<float>() const;
template const double* Tensor::data<double>() const;
template const int64_t* Tensor::data<int64_t>() const;

// ---------------------------------------------------------------- element access

static double load(const void* base, DType dtype, int64_t i) {
  switch (dtype) {
    case DType::f32: return static_cast<const float*>(base)[i];
    case DType::f64: return static_cast<const double*>(base)[i];
    case DType::i64: return static_cast<double>(static_cast<const int64_t*>(base)[i]);
  }
  return 0;
}

static void store(void* base, DType dtype, int64_t i, double value) {
  switch (dtype) {
    case DType::f32: static_cast<float*>(base)[i] = static_cast<float>(value); break;
    case DType::f64: static_cast<double*>(base)[i] = value; break;
    case DType::i64: static_cast<int64_t*>(base)[i] = kernels::ConvertTo<int64_t>{}(value); break;
  }
}

static int64_t flat_index(const Shape& shape, std::initializer_list<int64_t> index, const char* op) {
  check(static_cast<int>(index.size()) == shape.rank(), op, "got ", index.size(),
        " indices for a tensor of shape ", shape);
  int64_t flat = 0;
  int axis = 0;
  for (int64_t i : index) {
    check(i >= 0 && i < shape[axis], op, "index ", i, " is out of range for axis ", axis,
          " of shape ", shape);
    flat = flat * shape[axis] + i;
    ++axis;
  }
  return flat;
}

double Tensor::item() const {
  check(numel() == 1, "item", "expected a tensor with one element, got shape ", shape());
  return to_vector()[0];
}

double Tensor::at(std::initializer_list<int64_t> index) const {
  int64_t flat = flat_index(shape(), index, "at");
  if (device().is_cpu()) return load(raw_data(), dtype(), flat);
  return moved(*this, Device::cpu_device()).at(index);
}

std::vector<double> Tensor::to_vector() const {
  if (!device().is_cpu()) return moved(*this, Device::cpu_device()).to_vector();
  std::vector<double> values(numel());
  for (int64_t i = 0; i < numel(); ++i) values[i] = load(raw_data(), dtype(), i);
  return values;
}

// ---------------------------------------------------------------- in-place writes

static void check_writable(const Tensor& t, const char* op) {
  check(!(t.requires_grad() && grad_enabled()), op,
        "cannot modify a tensor that requires grad while gradients are recorded (its old "
        "values may be needed by backward); wrap the update in tg::NoGrad");
}

void Tensor::set(std::initializer_list<int64_t> index, double value) {
  check_writable(*this, "set");
  int64_t flat = flat_index(shape(), index, "set");
  check(device().is_cpu(), "set", "element writes need a CPU tensor, this one is on ", device());
  store(raw_data(), dtype(), flat, value);
  bump_version("set");
}

Tensor& Tensor::fill_(double value) {
  check_writable(*this, "fill_");
  backend_for(device()).fill(dtype(), raw_data(), numel(), value);
  return bump_version("fill_");
}

Tensor& Tensor::copy_(const Tensor& source) {
  check_writable(*this, "copy_");
  check(source.shape() == shape(), "copy_", "source shape ", source.shape(),
        " differs from destination shape ", shape());
  Tensor src = source.device() == device() ? source : moved(source, device());
  backend_for(device()).convert(src.dtype(), src.raw_data(), dtype(), raw_data(), numel());
  return bump_version("copy_");
}

Tensor& Tensor::bump_version(const char* op) {
  Storage& storage = *defined_impl(impl_, op).storage;
  ++storage.version;
  storage.last_write = op;
  return *this;
}

uint64_t Tensor::version() const { return defined_impl(impl_, "version").storage->version; }

// ---------------------------------------------------------------- copies and views

// y = x (new storage)                     grad_x = grad
Tensor Tensor::clone() const {
  Tensor out = converted(*this, dtype());
  if (is_recording(*this))
    record("clone", out, {*this}, [](const Tensor& grad, Gradients& g) { g.add(0, grad); });
  return out;
}

Tensor Tensor::detach() const {
  TensorImpl& self = defined_impl(impl_, "detach");
  auto impl = std::make_shared<TensorImpl>();
  impl->shape = self.shape;
  impl->dtype = self.dtype;
  impl->device = self.device;
  impl->storage = self.storage;
  impl->offset_bytes = self.offset_bytes;
  return Tensor(std::move(impl));
}

// y = x in another dtype                  grad_x = grad converted back
// (Converting to i64 ends the gradient's path, as in PyTorch: indices have no gradient.)
Tensor Tensor::to(DType target) const {
  if (target == dtype()) return *this;
  Tensor out = converted(*this, target);
  if (is_floating(target) && is_recording(*this)) {
    DType source = dtype();
    record("to_dtype", out, {*this}, [source](const Tensor& grad, Gradients& g) {
      g.add(0, grad.to(source));
    });
  }
  return out;
}

// y = x on another device                 grad_x = grad moved back
Tensor Tensor::to(Device target) const {
  if (target == device()) return *this;
  Tensor out = moved(*this, target);
  if (is_recording(*this)) {
    Device source = device();
    record("to_device", out, {*this}, [source](const Tensor& grad, Gradients& g) {
      g.add(0, grad.to(source));
    });
  }
  return out;
}

// ---------------------------------------------------------------- autograd fields

bool Tensor::requires_grad() const { return impl_ && impl_->requires_grad; }

Tensor& Tensor::set_requires_grad(bool requires_grad) {
  TensorImpl& impl = defined_impl(impl_, "set_requires_grad");
  check(impl.is_leaf, "set_requires_grad",
        "only leaf tensors can change requires_grad; this one was produced by a recorded op "
        "(use detach() to get a leaf that shares its data)");
  check(!requires_grad || is_floating(impl.dtype), "set_requires_grad",
        "only f32 and f64 tensors can require grad, this one is ", impl.dtype);
  impl.requires_grad = requires_grad;
  return *this;
}

bool Tensor::is_leaf() const { return defined_impl(impl_, "is_leaf").is_leaf; }
Tensor Tensor::grad() const {
  const TensorImpl& impl = defined_impl(impl_, "grad");
  check(impl.is_leaf || impl.retains_grad, "grad",
        "this tensor ", impl.shape, " was computed by a recorded op (it is not a leaf), and "
        "backward keeps gradients only of leaves; call retain_grad() on it before backward to "
        "keep its gradient too, or use tg::grad({loss}, {tensor}) to get it");
  return impl.grad;
}

bool Tensor::retains_grad() const { return defined_impl(impl_, "retains_grad").retains_grad; }

void Tensor::set_grad(const Tensor& grad) {
  TensorImpl& impl = defined_impl(impl_, "set_grad");
  if (grad.defined())
    check(grad.shape() == impl.shape && grad.dtype() == impl.dtype &&
              grad.device() == impl.device,
          "set_grad", "gradient ", grad.shape(), " ", grad.dtype(), " on ", grad.device(),
          " does not match tensor ", impl.shape, " ", impl.dtype, " on ", impl.device);
  impl.grad = grad;
}

void Tensor::zero_grad() { defined_impl(impl_, "zero_grad").grad = Tensor(); }

Tensor& Tensor::set_name(const std::string& name) {
  defined_impl(impl_, "set_name").name = name;
  return *this;
}
const std::string& Tensor::name() const { return defined_impl(impl_, "name").name; }

// ---------------------------------------------------------------- printing

namespace {

// Every element formatted alike, as PyTorch does: integers exactly (read as int64, not through a
// double, which would round values past 2^53), floats in fixed or, for a wide range, scientific
// notation with `precision` decimals (4 by default).
PrintOptions current_print_options;

std::vector<std::string> format_elements(const Tensor& cpu_tensor, int precision) {
  int64_t n = cpu_tensor.numel();
  std::vector<std::string> text(n);
  if (cpu_tensor.dtype() == DType::i64) {
    const int64_t* values = cpu_tensor.data<int64_t>();
    for (int64_t i = 0; i < n; ++i) text[i] = std::to_string(values[i]);
    return text;
  }
  std::vector<double> values = cpu_tensor.to_vector();
  double largest = 0, smallest = INFINITY;
  for (double v : values) {
    if (!std::isfinite(v)) continue;
    largest = std::max(largest, std::fabs(v));
    if (v != 0) smallest = std::min(smallest, std::fabs(v));
  }
  bool scientific = largest >= 1e5 || (smallest < 1e-4 && largest > 0);
  std::ostringstream os;
  os << (scientific ? std::scientific : std::fixed) << std::setprecision(precision);
  for (int64_t i = 0; i < n; ++i) {
    os.str("");
    os << values[i];
    text[i] = os.str();
  }
  return text;
}

// Prints the block of `text` starting at `offset` with dimensions shape[axis:], eliding the
// middle of long dimensions when `summarise`.
void print_block(std::ostream& os, const std::vector<std::string>& text, const Shape& shape,
                 int axis, int64_t offset, int width, bool summarise, int indent,
                 int64_t edge) {
  if (axis == shape.rank()) {
    os << std::setw(width) << text[offset];
    return;
  }
  int64_t n = shape[axis], stride = 1;
  for (int i = axis + 1; i < shape.rank(); ++i) stride *= shape[i];
  os << '[';
  for (int64_t i = 0; i < n; ++i) {
    if (summarise && n > 2 * edge && i == edge) {
      os << (axis + 1 == shape.rank() ? "..., " : "...,\n" + std::string(indent + 1, ' '));
      i = n - edge;
    }
    print_block(os, text, shape, axis + 1, offset + i * stride, width, summarise, indent + 1,
                edge);
    if (i + 1 < n) {
      if (axis + 1 == shape.rank()) os << ", ";
      else os << ',' << std::string(shape.rank() - axis - 1, '\n') << std::string(indent + 1, ' ');
    }
  }
  os << ']';
}

}  // namespace

void set_print_options(const PrintOptions& options) {
  check(options.precision >= 0 && options.precision <= 17 && options.threshold >= 0 &&
            options.edge_items >= 1,
        "set_print_options", "expected precision in [0, 17], threshold >= 0 and edge_items >= 1, "
        "got precision ", options.precision, ", threshold ", options.threshold, ", edge_items ",
        options.edge_items);
  current_print_options = options;
}

PrintOptions print_options() { return current_print_options; }

std::string Tensor::to_string() const { return to_string(current_print_options); }

std::string Tensor::to_string(const PrintOptions& options) const {
  check(options.precision >= 0 && options.precision <= 17 && options.edge_items >= 1,
        "Tensor::to_string", "expected precision in [0, 17] and edge_items >= 1");
  if (!defined()) return "tensor(undefined)";
  std::ostringstream os;
  os << "tensor(";
  if (numel() == 0) {
    // Like PyTorch: no brackets per row, which for a shape such as [2^62, 0] would never end.
    os << "[]";
    if (shape().rank() != 1) os << ", size=" << shape();
  } else {
    std::vector<std::string> text =
        format_elements(device().is_cpu() ? *this : moved(*this, Device::cpu_device()),
                        options.precision);
    size_t width = 0;
    for (const std::string& t : text) width = std::max(width, t.size());
    bool summarise = numel() > options.threshold;
    print_block(os, text, shape(), 0, 0, static_cast<int>(width), summarise, 7,
                options.edge_items);
  }
  os << ", " << dtype();
  if (!device().is_cpu()) os << ", " << device();
  if (requires_grad()) os << ", requires_grad";
  os << ')';
  return os.str();
}

std::ostream& operator<<(std::ostream& os, const Tensor& tensor) { return os << tensor.to_string(); }

}  // namespace tg
