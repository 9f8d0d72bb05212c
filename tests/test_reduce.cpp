// tests/test_reduce.cpp — reductions over all elements and over one axis, broadcast_to/sum_to.
#include <cmath>
#include <limits>

#include "helpers.h"

using namespace tg;
using tgtest::random_input;
using tgtest::require_error;
using tgtest::require_values;

TEST_CASE("reductions compute known values", "[reduce]") {
  Tensor x = tensor({1, 5, 3, 4, 2, 6}, {2, 3}, DType::f64);
  require_values(sum(x), {21});
  require_values(mean(x), {3.5});
  require_values(max(x), {6});
  require_values(min(x), {1});
  require_values(sum(x, 0), {5, 7, 9});
  require_values(sum(x, 1), {9, 12});
  require_values(sum(x, -1, true), {9, 12});
  REQUIRE(sum(x, -1, true).shape() == Shape{2, 1});
  require_values(mean(x, 0), {2.5, 3.5, 4.5});
  require_values(max(x, 1), {5, 6});
  require_values(min(x, 0), {1, 2, 3});
  double lse = std::log(std::exp(1.0) + std::exp(5.0) + std::exp(3.0));
  require_values(logsumexp(x, 1), {lse, std::log(std::exp(4.0) + std::exp(2.0) + std::exp(6.0))},
                 1e-12);
  require_values(argmax(x, 1), {1, 2});
  require_values(argmax(x, 0), {1, 0, 1});
}

TEST_CASE("reductions over a middle axis of a 3-D tensor", "[reduce]") {
  Tensor x = arange(24, DType::f64);
  Tensor t = reshape(x, {2, 3, 4});
  Tensor s = sum(t, 1);
  REQUIRE(s.shape() == Shape{2, 4});
  require_values(s, {12, 15, 18, 21, 48, 51, 54, 57});
  require_values(max(t, 1), {8, 9, 10, 11, 20, 21, 22, 23});
}

TEST_CASE("logsumexp is stable for large and -inf inputs", "[reduce]") {
  const double inf = std::numeric_limits<double>::infinity();
  require_values(logsumexp(tensor({1000, 1000}, DType::f64)), {1000 + std::log(2.0)}, 1e-9);
  require_values(logsumexp(tensor({1e4, 1e4}, DType::f32)), {1e4 + std::log(2.0)}, 1e-3);
  REQUIRE(logsumexp(tensor({-inf, -inf}, DType::f64)).item() == -inf);
  require_values(logsumexp(tensor({-inf, 0}, DType::f64)), {0});
  Tensor columns = tensor({-inf, 1, -inf, 2}, {2, 2}, DType::f64);
  require_values(logsumexp(columns, 0), {-inf, std::log(std::exp(1.0) + std::exp(2.0))}, 1e-12);
}

TEST_CASE("float32 sums accumulate accurately", "[reduce]") {
  Tensor x = full({1000000}, 0.1, DType::f32);
  REQUIRE(sum(x).item() == Approx(100000).epsilon(1e-6));
}

TEST_CASE("gradcheck: every reduction, all and per axis", "[reduce]") {
  Tensor x = random_input({3, 4, 2}, 21);
  using Reduce = Tensor (*)(const Tensor&, int, bool);
  for (Reduce op : {Reduce(sum), Reduce(mean), Reduce(max), Reduce(min), Reduce(logsumexp)}) {
    for (int axis : {0, 1, -1})
      for (bool keepdim : {false, true})
        REQUIRE_GRADCHECK([=](const std::vector<Tensor>& in) { return op(in[0], axis, keepdim); },
                          {x});
  }
  using ReduceAll = Tensor (*)(const Tensor&);
  for (ReduceAll op : {ReduceAll(sum), ReduceAll(mean), ReduceAll(max), ReduceAll(min),
                       ReduceAll(logsumexp)})
    REQUIRE_GRADCHECK([=](const std::vector<Tensor>& in) { return op(in[0]); }, {x});
}

TEST_CASE("max shares the gradient among ties", "[reduce]") {
  Tensor x = tensor({1, 3, 3}, DType::f64).set_requires_grad();
  backward(max(x));
  require_values(x.grad(), {0, 0.5, 0.5});
}

TEST_CASE("broadcast_to and sum_to are adjoint", "[reduce]") {
  Tensor b = broadcast_to(tensor({1, 2}, {2, 1}, DType::f64), {3, 2, 4});
  REQUIRE(b.shape() == Shape{3, 2, 4});
  REQUIRE(b.at({2, 1, 3}) == 2);
  Tensor s = sum_to(ones({3, 2, 4}, DType::f64), {2, 1});
  require_values(s, {12, 12});
  require_values(sum_to(ones({5, 3}, DType::f64), {3}), {5, 5, 5});
  require_values(sum_to(ones({2, 3}, DType::f64), {}), {6});
  Tensor x = random_input({2, 1}, 22);
  REQUIRE_GRADCHECK([](const std::vector<Tensor>& in) { return broadcast_to(in[0], {3, 2, 2}); }, {x});
  Tensor y = random_input({3, 2, 2}, 23);
  REQUIRE_GRADCHECK([](const std::vector<Tensor>& in) { return sum_to(in[0], {2, 1}); }, {y});
  require_error([] { broadcast_to(ones({3}), {2, 2}); }, {"broadcast_to", "[3]", "[2, 2]"});
  require_error([] { sum_to(ones({3}), {2}); }, {"sum_to", "[3]", "[2]"});
}

TEST_CASE("reduction errors name the axis and shape", "[reduce]") {
  require_error([] { sum(ones({2, 3}), 2); }, {"sum", "axis 2", "[2, 3]"});
  require_error([] { max(ones({2, 3}), -3); }, {"max", "axis -3", "[2, 3]"});
  require_error([] { max(ones({0})); }, {"max", "empty"});
}

TEST_CASE("sum, max, min and argmax take i64 exactly and give i64, as PyTorch", "[reduce]") {
  // Values past 2^53, where a float64 accumulator would round: the results must be exact.
  const int64_t big = (int64_t(1) << 60) + 1;
  auto values = [](const Tensor& t) {  // exact, not through double
    const int64_t* p = t.data<int64_t>();
    return std::vector<int64_t>(p, p + t.numel());
  };
  Tensor x = index_tensor({big, 3, -7, 1, big, -big}, {2, 3});
  Tensor total = sum(x);
  REQUIRE(total.dtype() == DType::i64);
  REQUIRE(total.shape() == Shape{});
  REQUIRE(values(total) == std::vector<int64_t>{big - 3});
  REQUIRE(values(sum(x, 0)) == std::vector<int64_t>{big + 1, big + 3, -7 - big});
  REQUIRE(values(sum(x, 1)) == std::vector<int64_t>{big - 4, 1});
  REQUIRE(sum(x, -1, true).shape() == Shape{2, 1});
  REQUIRE(values(max(x)) == std::vector<int64_t>{big});
  REQUIRE(values(min(x)) == std::vector<int64_t>{-big});
  REQUIRE(values(max(x, 0)) == std::vector<int64_t>{big, big, -7});
  REQUIRE(values(min(x, 1, true)) == std::vector<int64_t>{-7, -big});
  REQUIRE(max(x, 1).dtype() == DType::i64);
  // argmax: the first largest; the extremes of i64 are ordinary values (no infinity to meet).
  const int64_t lowest = std::numeric_limits<int64_t>::min();
  const int64_t highest = std::numeric_limits<int64_t>::max();
  REQUIRE(values(argmax(x, 1)) == std::vector<int64_t>{0, 1});
  REQUIRE(values(argmax(x, 0)) == std::vector<int64_t>{0, 1, 0});
  Tensor extremes = index_tensor({lowest, lowest, highest, highest}, {2, 2});
  REQUIRE(values(argmax(extremes, 1)) == std::vector<int64_t>{0, 0});
  REQUIRE(values(max(extremes, 1)) == std::vector<int64_t>{lowest, highest});
  REQUIRE(values(min(extremes, 0)) == std::vector<int64_t>{lowest, lowest});
  // A strided axis of a 3-D tensor, and an empty sum (0).
  Tensor t = reshape(arange(24, DType::f64).to(DType::i64), {2, 3, 4});
  REQUIRE(values(sum(t, 1)) == std::vector<int64_t>{12, 15, 18, 21, 48, 51, 54, 57});
  REQUIRE(values(min(t, 1)) == std::vector<int64_t>{0, 1, 2, 3, 12, 13, 14, 15});
  REQUIRE(values(argmax(t, 1)) == std::vector<int64_t>(8, 2));
  REQUIRE(values(sum(zeros({0, 3}, DType::i64), 0)) == std::vector<int64_t>{0, 0, 0});
  // A sum past the range wraps around modulo 2^64, as PyTorch's int64 sums.
  REQUIRE(values(sum(index_tensor({highest, 1}))) == std::vector<int64_t>{lowest});
  // Counting hits: the i64 sum of an i64 comparison.
  Tensor logits = tensor({0.1, 2.0, -1.0, 3.0, 0.0, 1.0, 0.5, 0.4, 0.3}, {3, 3});
  REQUIRE(values(sum(equal(argmax(logits, 1), index_tensor({1, 2, 0})))) ==
          std::vector<int64_t>{2});
  // Not on the tape, and the reductions without an integer meaning still refuse i64.
  tape().clear();
  sum(x);
  max(x, 0);
  REQUIRE(tape().size() == 0);
  require_error([&] { mean(x); }, {"mean", "f32 or f64", "i64"});
  require_error([&] { mean(x, 1); }, {"mean", "f32 or f64", "i64"});
  require_error([&] { logsumexp(x, 0); }, {"logsumexp", "f32 or f64", "i64"});
  require_error([] { max(zeros({0}, DType::i64)); }, {"max", "empty"});
}

TEST_CASE("the CPU backend's reduce takes i64 for sum, max and min only", "[reduce]") {
  Backend& cpu = backend_for(Device::cpu_device());
  const int64_t x[6] = {4, -2, 9, 9, 0, -5};
  int64_t out[3] = {};
  cpu.reduce(ReduceOp::sum, DType::i64, x, out, 1, 2, 3);  // [1, 2, 3] over the middle axis
  REQUIRE(std::vector<int64_t>(out, out + 3) == std::vector<int64_t>{13, -2, 4});
  cpu.reduce(ReduceOp::max, DType::i64, x, out, 3, 2, 1);  // rows of 2
  REQUIRE(std::vector<int64_t>(out, out + 3) == std::vector<int64_t>{4, 9, 0});
  cpu.reduce(ReduceOp::min, DType::i64, x, out, 1, 6, 1);
  REQUIRE(out[0] == -5);
  cpu.argmax(DType::i64, x, out, 1, 6, 1);
  REQUIRE(out[0] == 2);
  require_error([&] { cpu.reduce(ReduceOp::mean, DType::i64, x, out, 1, 6, 1); },
                {"reduce", "sum, max and min", "i64"});
  require_error([&] { cpu.reduce(ReduceOp::logsumexp, DType::i64, x, out, 1, 6, 1); },
                {"reduce", "i64"});
}
