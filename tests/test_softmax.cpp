// tests/test_softmax.cpp — softmax and log_softmax with a temperature: PyTorch's values,
// gradcheck (logits, axis, double and tensor temperatures, extremes), stability at logits ±1e4
// with T ∈ [0.05, 100], the all -inf row, and errors.
#include <cmath>
#include <limits>

#include "helpers.h"

using namespace tg;
using tgtest::random_input;
using tgtest::require_error;
using tgtest::require_values;

namespace {
bool all_finite(const Tensor& t) {
  for (double v : t.to_vector())
    if (!std::isfinite(v)) return false;
  return true;
}
// A fixed random weighting, so that gradcheck of a scalar sees every output.
Tensor weighted(const Tensor& y, unsigned seed) {
  return sum(mul(y, random_input(y.shape(), seed).detach().to(y.dtype())));
}
}  // namespace

TEST_CASE("softmax and log_softmax with temperature match PyTorch", "[softmax]") {
  Tensor x = tensor({1, 2, 3, -1, 0.5, -0.5, 4, 2}, {2, 4}, DType::f64);
  // F.softmax(x / 2, -1), F.log_softmax(x / 0.5, -1), F.softmax(x, 0)
  require_values(softmax(x, -1, 2.0),
                 {0.17437148764032928, 0.2874899806762354, 0.47399084625407806, 0.06414768542935739,
                  0.10550600659718101, 0.06399262778503366, 0.6071451478988161, 0.22335621771896919},
                 1e-14);
  require_values(log_softmax(x, -1, 0.5),
                 {-4.143222369708898, -2.1432223697088975, -0.14322236970889754, -8.143222369708898,
                  -7.019166082252575, -9.019166082252575, -0.019166082252574736, -4.019166082252575},
                 1e-13);
  require_values(softmax(x, 0),
                 {0.6224593312018546, 0.9241418199787566, 0.2689414213699951, 0.04742587317756679,
                  0.37754066879814546, 0.07585818002124356, 0.7310585786300049, 0.9525741268224334},
                 1e-14);
}

TEST_CASE("softmax(x, T) is softmax(x / T); log_softmax is its log; rows sum to 1", "[softmax]") {
  Tensor x = random_input({3, 5, 4}, 1, -3, 3).detach();
  for (int axis : {0, 1, 2, -1}) {
    for (double T : {0.3, 1.0, 4.0}) {
      Tensor y = softmax(x, axis, T);
      require_values(y, softmax(div(x, T), axis).to_vector(), 1e-14);
      require_values(log_softmax(x, axis, T), log(y).to_vector(), 1e-12);
      require_values(sum(y, axis), std::vector<double>(y.numel() / x.shape()[x.shape().axis(axis, "")], 1.0), 1e-14);
    }
  }
}

TEST_CASE("the strided path (axis not last) agrees with the contiguous one", "[softmax]") {
  Tensor x = random_input({4, 6}, 2, -5, 5).detach();
  for (DType dtype : {DType::f32, DType::f64}) {
    Tensor xt = transpose(x).to(dtype);
    require_values(transpose(log_softmax(x.to(dtype), 0, 1.5)), log_softmax(xt, 1, 1.5).to_vector(), 1e-6);
    require_values(transpose(softmax(x.to(dtype), 0, 0.7)), softmax(xt, 1, 0.7).to_vector(), 1e-6);
  }
}

TEST_CASE("float32 softmax kernels agree with float64", "[softmax]") {
  Tensor x = random_input({7, 300}, 3, -20, 20).detach();
  require_values(log_softmax(x.to(DType::f32), -1, 0.8), log_softmax(x, -1, 0.8).to_vector(), 2e-5);
  require_values(softmax(x.to(DType::f32), -1, 0.8), softmax(x, -1, 0.8).to_vector(), 1e-6);
}

TEST_CASE("gradcheck: softmax and log_softmax over every axis, several temperatures", "[softmax]") {
  Tensor x = random_input({2, 3, 4}, 4, -2, 2);
  for (int axis : {0, 1, 2}) {
    for (double T : {1.0, 0.3, 7.0}) {
      REQUIRE_GRADCHECK([axis, T](const std::vector<Tensor>& in) { return softmax(in[0], axis, T); }, {x});
      REQUIRE_GRADCHECK([axis, T](const std::vector<Tensor>& in) { return log_softmax(in[0], axis, T); }, {x});
    }
  }
}

TEST_CASE("gradcheck: logits ±50 and temperatures 0.05 and 100", "[softmax]") {
  Tensor x = tensor({50, -50, 10, -10, 0, 49, 50, -50, -49, 3, 25, -25}, {2, 6}, DType::f64)
                 .set_requires_grad();
  for (double T : {0.05, 1.0, 100.0}) {
    REQUIRE_GRADCHECK([T](const std::vector<Tensor>& in) { return weighted(softmax(in[0], -1, T), 5); }, {x});
    REQUIRE_GRADCHECK([T](const std::vector<Tensor>& in) { return weighted(log_softmax(in[0], -1, T), 6); }, {x});
  }
}

TEST_CASE("gradcheck: the temperature as a tensor — one T, and one per distribution", "[softmax]") {
  Tensor x = random_input({3, 5}, 7, -3, 3);
  Tensor t0 = tensor({1.7}, Shape{}, DType::f64).set_requires_grad();
  Tensor per_row = random_input({3, 1}, 8, 0.3, 3);
  for (Tensor T : {t0, per_row}) {
    REQUIRE_GRADCHECK([](const std::vector<Tensor>& in) { return softmax(in[0], -1, in[1]); }, {x, T});
    REQUIRE_GRADCHECK([](const std::vector<Tensor>& in) { return log_softmax(in[0], -1, in[1]); }, {x, T});
  }
  // per distribution along axis 0 of [3, 5]: T of shape [1, 5]
  Tensor per_column = random_input({1, 5}, 9, 0.3, 3);
  REQUIRE_GRADCHECK([](const std::vector<Tensor>& in) { return log_softmax(in[0], 0, in[1]); }, {x, per_column});
  // extreme temperatures as tensors
  Tensor cold = tensor({0.05}, Shape{}, DType::f64).set_requires_grad();
  Tensor hot = tensor({100.0}, Shape{}, DType::f64).set_requires_grad();
  for (Tensor T : {cold, hot})
    REQUIRE_GRADCHECK([](const std::vector<Tensor>& in) { return weighted(log_softmax(in[0], -1, in[1]), 10); }, {x, T});
}

TEST_CASE("a tensor temperature gives the same values as the double one", "[softmax]") {
  Tensor x = random_input({2, 4}, 11).detach();
  require_values(softmax(x, -1, scalar(2.5, DType::f64)), softmax(x, -1, 2.5).to_vector(), 1e-15);
  Tensor per_row = tensor({0.5, 3}, {2, 1}, DType::f64);
  std::vector<double> expected = concat({log_softmax(slice(x, 0, 0, 1), -1, 0.5),
                                         log_softmax(slice(x, 0, 1, 2), -1, 3.0)}, 0).to_vector();
  require_values(log_softmax(x, -1, per_row), expected, 1e-14);
}

TEST_CASE("softmax stays finite for logits ±1e4 and T from 0.05 to 100 (float32 and float64)",
          "[softmax]") {
  for (DType dtype : {DType::f32, DType::f64}) {
    for (double T : {0.05, 1.0, 100.0}) {
      Tensor x = tensor({1e4, -1e4, 0, 9999, -1e4, -1e4, 1e4, 1e4}, {2, 4}, dtype).set_requires_grad();
      Tensor y = log_softmax(x, -1, T);
      REQUIRE(all_finite(y));
      // exact: row 1 has one max; row 2 two equal maxima (log ½) and the rest ~ -2e4/T
      REQUIRE(y.at({1, 2}) == Approx(-std::log(2.0)).margin(1e-6));
      REQUIRE(y.at({0, 0}) == Approx(-std::log1p(std::exp(-1.0 / T))).margin(1e-5));
      REQUIRE(y.at({0, 3}) == Approx(-1.0 / T - std::log1p(std::exp(-1.0 / T))).margin(1e-3));
      backward(weighted(y, 12));
      REQUIRE(all_finite(x.grad()));
      Tensor x2 = x.detach().clone().set_requires_grad();
      Tensor p = softmax(x2, -1, T);
      REQUIRE(all_finite(p));
      backward(weighted(p, 13));
      REQUIRE(all_finite(x2.grad()));
    }
  }
}

TEST_CASE("softmax of a row of all -inf is zeros, not NaN; -inf entries get probability 0",
          "[softmax]") {
  const double inf = std::numeric_limits<double>::infinity();
  for (DType dtype : {DType::f32, DType::f64}) {
    Tensor x = tensor({-inf, -inf, -inf, 1, -inf, 1}, {2, 3}, dtype).set_requires_grad();
    Tensor y = softmax(x, -1);
    require_values(y, {0, 0, 0, 0.5, 0, 0.5});
    backward(weighted(y, 14));
    REQUIRE(all_finite(x.grad()));
    std::vector<double> logs = log_softmax(x.detach(), -1).to_vector();
    REQUIRE(logs[0] == -inf);
    REQUIRE(logs[4] == -inf);
    REQUIRE(logs[3] == Approx(-std::log(2.0)));
  }
}

TEST_CASE("softmax rejects T ≤ 0, non-finite T, badly shaped T and empty axes", "[softmax]") {
  Tensor x = zeros({2, 3});
  require_error([&] { softmax(x, -1, 0.0); }, {"softmax", "temperature", "> 0", "0"});
  require_error([&] { log_softmax(x, -1, -1.0); }, {"log_softmax", "temperature", "-1"});
  require_error([&] { softmax(x, -1, std::nan("")); }, {"softmax", "temperature"});
  require_error([&] { softmax(x, -1, tensor({1.0, -2.0}, {2, 1})); }, {"softmax", "temperature", "-2"});
  require_error([&] { softmax(x, -1, ones({3})); }, {"softmax", "[3]", "[2, 1]"});
  require_error([&] { softmax(x, -1, ones({}, DType::f64)); }, {"softmax", "dtypes differ"});
  require_error([&] { softmax(zeros({2, 0}), -1); }, {"softmax", "empty"});
  require_error([&] { softmax(x, 2); }, {"softmax"});
}
