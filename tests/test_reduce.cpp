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
