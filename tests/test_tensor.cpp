// tests/test_tensor.cpp — creating tensors, reading them back, copies, views, printing, memory.
#include <cmath>
#include <limits>

#include "helpers.h"

using namespace tg;
using tgtest::require_error;
using tgtest::require_values;

TEST_CASE("factories fill shape, dtype and values", "[tensor]") {
  Tensor z = zeros({2, 3});
  REQUIRE(z.shape() == Shape{2, 3});
  REQUIRE(z.dtype() == DType::f32);
  REQUIRE(z.numel() == 6);
  REQUIRE(z.dim() == 2);
  REQUIRE(z.size(-1) == 3);
  require_values(z, {0, 0, 0, 0, 0, 0});
  require_values(ones({2}, DType::f64), {1, 1});
  require_values(full({3}, 2.5), {2.5, 2.5, 2.5});
  require_values(arange(4), {0, 1, 2, 3});
  Tensor s = scalar(7.0, DType::f64);
  REQUIRE(s.dim() == 0);
  REQUIRE(s.numel() == 1);
  REQUIRE(s.item() == 7.0);
}

TEST_CASE("tensor() takes row-major values and checks their count", "[tensor]") {
  Tensor t = tensor({1, 2, 3, 4, 5, 6}, {2, 3});
  REQUIRE(t.at({0, 2}) == 3);
  REQUIRE(t.at({1, 0}) == 4);
  require_error([] { tensor({1, 2, 3}, {2, 2}); }, {"tensor", "3 values", "[2, 2]"});
}

TEST_CASE("rank up to 8 works and above is an error", "[tensor]") {
  Tensor t = ones({1, 2, 1, 2, 1, 2, 1, 2});
  REQUIRE(t.numel() == 16);
  require_error([] { Shape s{1, 1, 1, 1, 1, 1, 1, 1, 1}; }, {"rank above 8"});
}

TEST_CASE("a shape too large to allocate is an error, not a wrapped-around size", "[tensor]") {
  // 2^32 · 2^32 elements wrap to 0 in 64 bits; 2^61 f64 elements are 2^64 bytes.
  require_error([] { empty({int64_t(1) << 32, int64_t(1) << 32}); }, {"empty", "2^63 bytes"});
  require_error([] { zeros({int64_t(1) << 61}, DType::f64); }, {"empty", "f64", "2^63 bytes"});
  require_error([] { arange(-1); }, {"arange", "-1"});
}

TEST_CASE("element access checks indices", "[tensor]") {
  Tensor t = tensor({1, 2, 3, 4}, {2, 2}, DType::f64);
  t.set({1, 1}, 9);
  REQUIRE(t.at({1, 1}) == 9);
  require_error([&] { t.at({2, 0}); }, {"at", "index 2", "axis 0", "[2, 2]"});
  require_error([&] { t.at({0}); }, {"at", "1 indices", "[2, 2]"});
  require_error([&] { t.item(); }, {"item", "one element", "[2, 2]"});
  require_error([&] { t.data<float>(); }, {"data", "f64", "not f32"});
}

TEST_CASE("dtype conversion, clone and detach", "[tensor]") {
  Tensor a = tensor({1.5, -2.25}, DType::f64);
  Tensor b = a.to(DType::f32);
  REQUIRE(b.dtype() == DType::f32);
  require_values(b, {1.5, -2.25});
  Tensor i = a.to(DType::i64);
  require_values(i, {1, -2});

  Tensor c = a.clone();
  c.set({0}, 100);
  REQUIRE(a.at({0}) == 1.5);  // a clone has its own storage

  Tensor d = a.detach();
  d.set({0}, 100);
  REQUIRE(a.at({0}) == 100);  // detach shares storage
  REQUIRE_FALSE(d.requires_grad());
}

TEST_CASE("float to i64 is defined for NaN, infinities and values past int64", "[tensor]") {
  const double inf = std::numeric_limits<double>::infinity();
  for (DType from : {DType::f32, DType::f64}) {
    Tensor x = tensor({std::nan(""), inf, -inf, 1e30, -1e30, 2.9, -2.9}, from);
    std::vector<int64_t> expected = {0, INT64_MAX, INT64_MIN, INT64_MAX, INT64_MIN, 2, -2};
    Tensor i = x.to(DType::i64);
    for (size_t k = 0; k < expected.size(); ++k) REQUIRE(i.data<int64_t>()[k] == expected[k]);
  }
  Tensor j = index_tensor({0, 0});
  j.set({0}, std::nan(""));
  j.set({1}, 1e300);
  REQUIRE(j.data<int64_t>()[0] == 0);
  REQUIRE(j.data<int64_t>()[1] == INT64_MAX);
  j.fill_(-inf);
  REQUIRE(j.data<int64_t>()[1] == INT64_MIN);
}

TEST_CASE("fill_ and copy_ write in place but never into a recorded variable", "[tensor]") {
  Tensor t = zeros({3}, DType::f64);
  t.fill_(4);
  require_values(t, {4, 4, 4});
  t.copy_(tensor({1, 2, 3}, DType::f32));
  require_values(t, {1, 2, 3});
  require_error([&] { t.copy_(ones({4})); }, {"copy_", "[4]", "[3]"});
  t.set_requires_grad();
  require_error([&] { t.fill_(0); }, {"fill_", "requires grad", "NoGrad"});
  NoGrad no_grad;
  t.fill_(0);  // allowed: this is how an optimizer updates parameters
  require_values(t, {0, 0, 0});
}

TEST_CASE("printing looks like PyTorch", "[tensor]") {
  Tensor t = tensor({1, 2, 3, 4}, {2, 2});
  REQUIRE(t.to_string() == "tensor([[1.0000, 2.0000],\n        [3.0000, 4.0000]], f32)");
  REQUIRE(scalar(0.5, DType::f64).to_string() == "tensor(0.5000, f64)");
  REQUIRE(index_tensor({3, 1}).to_string() == "tensor([3, 1], i64)");
  // i64 prints exactly, also past 2^53 where a double would round
  REQUIRE(index_tensor({INT64_MAX, INT64_MIN, (int64_t(1) << 53) + 1}).to_string() ==
          "tensor([ 9223372036854775807, -9223372036854775808,     9007199254740993], i64)");
  REQUIRE(tensor({1e-6, 1}).to_string() == "tensor([1.0000e-06, 1.0000e+00], f32)");
  std::string big = zeros({100, 100}).to_string();
  REQUIRE(big.find("...") != std::string::npos);
  REQUIRE(big.size() < 2000);
  REQUIRE(Tensor().to_string() == "tensor(undefined)");
  // Empty tensors print their size instead of one bracket pair per row (PyTorch does the same).
  REQUIRE(zeros({0}).to_string() == "tensor([], f32)");
  REQUIRE(zeros({3, 0}, DType::f64).to_string() == "tensor([], size=[3, 0], f64)");
  REQUIRE(reshape(zeros({0}), {int64_t(1) << 62, 0}).to_string() ==
          "tensor([], size=[4611686018427387904, 0], f32)");
}

TEST_CASE("broadcast_shapes follows NumPy and names the op on failure", "[tensor]") {
  REQUIRE(broadcast_shapes({2, 3}, {3}, "t") == Shape{2, 3});
  REQUIRE(broadcast_shapes({4, 1, 3}, {2, 1}, "t") == Shape{4, 2, 3});
  REQUIRE(broadcast_shapes({}, {5}, "t") == Shape{5});
  require_error([] { broadcast_shapes({2, 3}, {4}, "mul"); }, {"mul", "[2, 3]", "[4]"});
}

TEST_CASE("using an undefined tensor is an error, not a crash", "[tensor]") {
  Tensor undefined;
  REQUIRE_FALSE(undefined.defined());
  require_error([&] { undefined.shape(); }, {"undefined"});
  require_error([&] { add(undefined, ones({1})); }, {"add", "undefined"});
  require_error([&] { sum(undefined); }, {"sum", "undefined"});
}

TEST_CASE("the caching allocator reuses freed blocks", "[tensor]") {
  Backend& cpu = backend_for(Device::cpu_device());
  { Tensor warm = empty({1000}); }  // leaves a 4000-byte block in the cache
  uint64_t before = cpu.memory_stats().system_allocations;
  for (int i = 0; i < 100; ++i) {
    Tensor t = empty({1000});
    t.fill_(1);
  }
  REQUIRE(cpu.memory_stats().system_allocations == before);
  REQUIRE(cpu.memory_stats().bytes_cached > 0);
}

TEST_CASE("every block is 64-byte aligned, whatever its size", "[tensor]") {
  for (int64_t n : {1, 3, 17, 24, 25, 100, 1000, 4097, 100000}) {
    Tensor t = empty({n});
    REQUIRE(reinterpret_cast<uintptr_t>(t.raw_data()) % 64 == 0);
  }
}

TEST_CASE("asking for a device without a backend is a clear error", "[tensor]") {
  require_error([] { zeros({2}, DType::f32, Device::cuda_device(63)); },
                {"no backend for cuda:63"});
}

TEST_CASE("clone and dtype conversion pass gradients; conversion to i64 ends them", "[tensor]") {
  Tensor x = tensor({1.5, -2.0}, DType::f64).set_requires_grad();
  backward(sum(x.to(DType::f32) * 3.0));
  REQUIRE(x.grad().dtype() == DType::f64);  // the gradient comes back in x's dtype
  require_values(x.grad(), {3, 3});
  REQUIRE_GRADCHECK([](const std::vector<Tensor>& in) { return in[0].clone() * in[0]; }, {x});
  REQUIRE_FALSE(x.to(DType::i64).requires_grad());
  REQUIRE_FALSE(x.detach().clone().requires_grad());
  tape().clear();
}
