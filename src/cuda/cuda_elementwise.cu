// src/cuda/cuda_elementwise.cu — elementwise work on the GPU: fill, convert, copy_strided,
// unary/binary/where (the functors of src/kernels/elementwise_math.h over the shared broadcast
// walk), Philox (src/kernels/philox.h) and the fused optimizer steps (optimizer_math.h). One
// thread per element in grid-stride loops; nothing here reduces, so nothing here can differ from
// the CPU except in the last bit of a transcendental function.
#include "../kernels/broadcast_walk.h"
#include "../kernels/elementwise_math.h"
#include "../kernels/optimizer_math.h"
#include "../kernels/philox.h"
#include "cuda_common.cuh"

namespace tg::cuda {

namespace {

// ---------------------------------------------------------------- data movement

template <class T>
__global__ void fill_kernel(T* out, int64_t n, T value) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) out[i] = value;
}

template <class From, class To>
__global__ void convert_kernel(const From* in, To* out, int64_t n) {
  for (int64_t i = global_thread(); i < n; i += grid_threads())
    out[i] = kernels::ConvertTo<To>{}(in[i]);
}

// Word is a 4- or 8-byte integer: copying needs only the element size.
template <class Word>
__global__ void copy_strided_kernel(const Word* in, Word* out, int64_t n, kernels::BroadcastWalk w) {
  for (int64_t flat = global_thread(); flat < n; flat += grid_threads()) {
    int64_t offsets[2];
    kernels::walk_offsets<2>(w, flat, offsets);
    out[offsets[1]] = in[offsets[0]];
  }
}

// ---------------------------------------------------------------- elementwise

template <class F, class T>
__global__ void unary_kernel(const T* x, T* y, int64_t n, T a, T b) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) y[i] = F{}(x[i], a, b);
}

template <class F, class T>
__global__ void binary_kernel(const T* a, const T* b, T* out, int64_t n, kernels::BroadcastWalk w) {
  for (int64_t flat = global_thread(); flat < n; flat += grid_threads()) {
    int64_t offsets[2];
    kernels::walk_offsets<2>(w, flat, offsets);
    out[flat] = F{}(a[offsets[0]], b[offsets[1]]);
  }
}

template <class T>
__global__ void where_kernel(const T* condition, const T* a, const T* b, T* out, int64_t n,
                             kernels::BroadcastWalk w) {
  for (int64_t flat = global_thread(); flat < n; flat += grid_threads()) {
    int64_t offsets[3];
    kernels::walk_offsets<3>(w, flat, offsets);
    out[flat] = condition[offsets[0]] != T(0) ? a[offsets[1]] : b[offsets[2]];
  }
}

// ---------------------------------------------------------------- Philox

// One thread per Philox block: block `offset + b` gives samples b·per_block ... (the CPU's order).
template <class T>
__global__ void random_kernel(T* out, int64_t n, bool normal, T a, T b, uint64_t seed,
                              uint64_t stream, uint64_t offset) {
  constexpr int per_block = kernels::samples_per_block<T>();
  const int64_t blocks = (n + per_block - 1) / per_block;
  for (int64_t blk = global_thread(); blk < blocks; blk += grid_threads()) {
    const kernels::PhiloxBlock block = kernels::philox_block(seed, stream, offset + blk);
    for (int lane = 0; lane < per_block; ++lane) {
      const int64_t i = blk * per_block + lane;
      if (i < n) out[i] = kernels::random_sample(normal, block, lane, a, b);
    }
  }
}

// ---------------------------------------------------------------- optimizers

template <class T>
__global__ void adam_kernel(T* p, const T* g, T* m, T* v, int64_t n, kernels::AdamScalars<T> s) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    T param = p[i], exp_avg = m[i], exp_avg_sq = v[i];
    kernels::adam_update(param, g[i], exp_avg, exp_avg_sq, s);
    p[i] = param, m[i] = exp_avg, v[i] = exp_avg_sq;
  }
}

template <class T>
__global__ void sgd_kernel(T* p, const T* g, T* buffer, int64_t n, kernels::SgdScalars<T> s) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    T param = p[i];
    if (buffer) {
      T b = buffer[i];
      kernels::sgd_update_momentum(param, g[i], b, s);
      buffer[i] = b;
    } else {
      kernels::sgd_update(param, g[i], s);
    }
    p[i] = param;
  }
}

}  // namespace

// ---------------------------------------------------------------- entry points

void CudaBackend::fill(DType dtype, void* out, int64_t n, double value) {
  if (n == 0) return;
  DeviceGuard guard(index_);
  dispatch_any(dtype, [&](auto zero) {
    using T = decltype(zero);
    fill_kernel<<<blocks_for(n), kThreads, 0, stream_>>>(static_cast<T*>(out), n,
                                                         kernels::ConvertTo<T>{}(value));
  });
  check_launch("fill", index_);
}

void CudaBackend::convert(DType from, const void* in, DType to, void* out, int64_t n) {
  if (n == 0) return;
  DeviceGuard guard(index_);
  if (from == to) {
    if (in != out)
      check_cuda(cudaMemcpyAsync(out, in, n * dtype_size(from), cudaMemcpyDeviceToDevice, stream_),
                 "convert", "cudaMemcpyAsync", index_);
    return;
  }
  dispatch_any(from, [&](auto from_zero) {
    using From = decltype(from_zero);
    dispatch_any(to, [&](auto to_zero) {
      using To = decltype(to_zero);
      convert_kernel<<<blocks_for(n), kThreads, 0, stream_>>>(static_cast<const From*>(in),
                                                              static_cast<To*>(out), n);
    });
  });
  check_launch("convert", index_);
}

void CudaBackend::copy_strided(DType dtype, const Shape& shape, const void* in,
                               const int64_t* in_strides, void* out, const int64_t* out_strides) {
  const int64_t n = shape.numel();
  if (n == 0) return;
  DeviceGuard guard(index_);
  int64_t strides[BroadcastLayout::kMaxInputs][kMaxRank] = {};
  for (int d = 0; d < shape.rank(); ++d) strides[0][d] = in_strides[d], strides[1][d] = out_strides[d];
  const kernels::BroadcastWalk w = kernels::collapse_walk(shape, strides, 2);
  if (dtype_size(dtype) == 4)
    copy_strided_kernel<<<blocks_for(n), kThreads, 0, stream_>>>(
        static_cast<const uint32_t*>(in), static_cast<uint32_t*>(out), n, w);
  else
    copy_strided_kernel<<<blocks_for(n), kThreads, 0, stream_>>>(
        static_cast<const uint64_t*>(in), static_cast<uint64_t*>(out), n, w);
  check_launch("copy_strided", index_);
}

void CudaBackend::unary(UnaryOp op, DType dtype, const void* x_, void* y_, int64_t n, double a_,
                        double b_) {
  if (n == 0) return;
  DeviceGuard guard(index_);
  dispatch_floating(dtype, "unary", [&](auto zero) {
    using T = decltype(zero);
    const T* x = static_cast<const T*>(x_);
    T* y = static_cast<T*>(y_);
    const T a = static_cast<T>(a_), b = static_cast<T>(b_);
    auto run = [&](auto functor) {
      unary_kernel<decltype(functor), T><<<blocks_for(n), kThreads, 0, stream_>>>(x, y, n, a, b);
    };
    namespace k = kernels;
    switch (op) {
      case UnaryOp::neg: return run(k::Neg{});
      case UnaryOp::exp: return run(k::Exp{});
      case UnaryOp::log: return run(k::Log{});
      case UnaryOp::log1p: return run(k::Log1p{});
      case UnaryOp::sqrt: return run(k::Sqrt{});
      case UnaryOp::abs: return run(k::Abs{});
      case UnaryOp::sign: return run(k::Sign{});
      case UnaryOp::tanh: return run(k::Tanh{});
      case UnaryOp::sigmoid: return run(k::Sigmoid{});
      case UnaryOp::relu: return run(k::Relu{});
      case UnaryOp::square: return run(k::Square{});
      case UnaryOp::reciprocal: return run(k::Reciprocal{});
      case UnaryOp::add_scalar: return run(k::AddScalar{});
      case UnaryOp::mul_scalar: return run(k::MulScalar{});
      case UnaryOp::rsub_scalar: return run(k::RsubScalar{});
      case UnaryOp::pow_scalar: return run(k::PowScalar{});
      case UnaryOp::clamp: return run(k::Clamp{});
      case UnaryOp::in_range: return run(k::InRange{});
      case UnaryOp::isfinite: return run(k::IsFinite{});
      case UnaryOp::isnan: return run(k::IsNan{});
      case UnaryOp::gelu: return run(k::Gelu{});
      case UnaryOp::gelu_tanh: return run(k::GeluTanh{});
      case UnaryOp::silu: return run(k::Silu{});
      case UnaryOp::leaky_relu: return run(k::LeakyRelu{});
      case UnaryOp::softplus: return run(k::Softplus{});
      case UnaryOp::elu: return run(k::Elu{});
      case UnaryOp::sin: return run(k::Sin{});
      case UnaryOp::cos: return run(k::Cos{});
      case UnaryOp::leaky_relu_slope: return run(k::LeakyReluSlope{});
      case UnaryOp::softplus_slope: return run(k::SoftplusSlope{});
      case UnaryOp::elu_slope: return run(k::EluSlope{});
    }
  });
  check_launch("unary", index_);
}

void CudaBackend::binary(BinaryOp op, DType dtype, const void* a_, const void* b_, void* out_,
                         const BroadcastLayout& layout) {
  const int64_t n = layout.shape.numel();
  if (n == 0) return;
  DeviceGuard guard(index_);
  const kernels::BroadcastWalk w = kernels::collapse_walk(layout);
  if (dtype == DType::i64) {  // comparisons only (backend.h)
    check(is_comparison(op), "binary", "only comparisons take i64 inputs");
    const int64_t* a = static_cast<const int64_t*>(a_);
    const int64_t* b = static_cast<const int64_t*>(b_);
    int64_t* out = static_cast<int64_t*>(out_);
    auto run = [&](auto functor) {
      binary_kernel<decltype(functor), int64_t><<<blocks_for(n), kThreads, 0, stream_>>>(a, b, out, n, w);
    };
    namespace k = kernels;
    switch (op) {
      case BinaryOp::equal: run(k::Equal{}); break;
      case BinaryOp::less: run(k::Less{}); break;
      case BinaryOp::less_equal: run(k::LessEqual{}); break;
      case BinaryOp::greater: run(k::Greater{}); break;
      case BinaryOp::greater_equal: run(k::GreaterEqual{}); break;
      default: break;
    }
    check_launch("binary", index_);
    return;
  }
  dispatch_floating(dtype, "binary", [&](auto zero) {
    using T = decltype(zero);
    const T* a = static_cast<const T*>(a_);
    const T* b = static_cast<const T*>(b_);
    T* out = static_cast<T*>(out_);
    auto run = [&](auto functor) {
      binary_kernel<decltype(functor), T><<<blocks_for(n), kThreads, 0, stream_>>>(a, b, out, n, w);
    };
    namespace k = kernels;
    switch (op) {
      case BinaryOp::add: return run(k::Add{});
      case BinaryOp::sub: return run(k::Sub{});
      case BinaryOp::mul: return run(k::Mul{});
      case BinaryOp::div: return run(k::Div{});
      case BinaryOp::pow: return run(k::Pow{});
      case BinaryOp::minimum: return run(k::Minimum{});
      case BinaryOp::maximum: return run(k::Maximum{});
      case BinaryOp::equal: return run(k::Equal{});
      case BinaryOp::less: return run(k::Less{});
      case BinaryOp::less_equal: return run(k::LessEqual{});
      case BinaryOp::greater: return run(k::Greater{});
      case BinaryOp::greater_equal: return run(k::GreaterEqual{});
      case BinaryOp::relu_backward: return run(k::ReluBackward{});
      case BinaryOp::tanh_backward: return run(k::TanhBackward{});
      case BinaryOp::sigmoid_backward: return run(k::SigmoidBackward{});
      case BinaryOp::abs_backward: return run(k::AbsBackward{});
      case BinaryOp::gelu_backward: return run(k::GeluBackward{});
      case BinaryOp::gelu_tanh_backward: return run(k::GeluTanhBackward{});
      case BinaryOp::silu_backward: return run(k::SiluBackward{});
    }
  });
  check_launch("binary", index_);
}

void CudaBackend::where(DType dtype, const void* condition, const void* a, const void* b,
                        void* out, const BroadcastLayout& layout) {
  const int64_t n = layout.shape.numel();
  if (n == 0) return;
  DeviceGuard guard(index_);
  const kernels::BroadcastWalk w = kernels::collapse_walk(layout);
  dispatch_floating(dtype, "where", [&](auto zero) {
    using T = decltype(zero);
    where_kernel<<<blocks_for(n), kThreads, 0, stream_>>>(
        static_cast<const T*>(condition), static_cast<const T*>(a), static_cast<const T*>(b),
        static_cast<T*>(out), n, w);
  });
  check_launch("where", index_);
}

void CudaBackend::fill_random(RandomDistribution distribution, DType dtype, void* out, int64_t n,
                              double a, double b, uint64_t seed, uint64_t stream,
                              uint64_t offset) {
  if (n == 0) return;
  DeviceGuard guard(index_);
  dispatch_floating(dtype, "fill_random", [&](auto zero) {
    using T = decltype(zero);
    const int64_t blocks = (n + kernels::samples_per_block<T>() - 1) / kernels::samples_per_block<T>();
    random_kernel<<<blocks_for(blocks), kThreads, 0, stream_>>>(
        static_cast<T*>(out), n, distribution == RandomDistribution::normal, static_cast<T>(a),
        static_cast<T>(b), seed, stream, offset);
  });
  check_launch("fill_random", index_);
}

void CudaBackend::adam_step(DType dtype, void* param, const void* grad, void* exp_avg,
                            void* exp_avg_sq, int64_t n, const AdamStep& step) {
  if (n == 0) return;
  DeviceGuard guard(index_);
  dispatch_floating(dtype, "adam_step", [&](auto zero) {
    using T = decltype(zero);
    adam_kernel<<<blocks_for(n), kThreads, 0, stream_>>>(
        static_cast<T*>(param), static_cast<const T*>(grad), static_cast<T*>(exp_avg),
        static_cast<T*>(exp_avg_sq), n, kernels::adam_scalars<T>(step));
  });
  check_launch("adam_step", index_);
}

void CudaBackend::sgd_step(DType dtype, void* param, const void* grad, void* momentum_buffer,
                           int64_t n, const SgdStep& step) {
  check(step.momentum == 0 || momentum_buffer != nullptr, "sgd_step", "momentum ", step.momentum,
        " needs a momentum buffer");
  if (n == 0) return;
  DeviceGuard guard(index_);
  dispatch_floating(dtype, "sgd_step", [&](auto zero) {
    using T = decltype(zero);
    sgd_kernel<<<blocks_for(n), kThreads, 0, stream_>>>(
        static_cast<T*>(param), static_cast<const T*>(grad),
        step.momentum == 0 ? nullptr : static_cast<T*>(momentum_buffer), n,
        kernels::sgd_scalars<T>(step));
  });
  check_launch("sgd_step", index_);
}

}  // namespace tg::cuda
