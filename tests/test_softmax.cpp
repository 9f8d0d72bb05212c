// tests/test_softmax.cpp — softmax and log_softmax with a temperature: PyTorch's values,
// gradcheck (logits, axis, double and tensor temperatures, extremes), stability at logits ±1e4
// with T ∈ [0.05, 100], the all -inf row, empty axes (with the other fused row ops), and errors.
#include <cmath>
#include <limits>

#include "helpers.h"

using namespace tg;
using tgtest::random_input;
using tgtest::require_error;
using tgtest::all_finite;
using tgtest::require_values;

namespace {
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

TEST_CASE("softmax rejects T ≤ 0, non-finite T and badly shaped T", "[softmax]") {
  Tensor x = zeros({2, 3});
  require_error([&] { softmax(x, -1, 0.0); }, {"softmax", "temperature", "> 0", "0"});
  require_error([&] { log_softmax(x, -1, -1.0); }, {"log_softmax", "temperature", "-1"});
  require_error([&] { softmax(x, -1, std::nan("")); }, {"softmax", "temperature"});
  require_error([&] { softmax(x, -1, tensor({1.0, -2.0}, {2, 1})); }, {"softmax", "temperature", "-2"});
  require_error([&] { softmax(x, -1, ones({3})); }, {"softmax", "[3]", "[2, 1]"});
  require_error([&] { softmax(x, -1, ones({}, DType::f64)); }, {"softmax", "dtypes differ"});
  require_error([&] { softmax(x, 2); }, {"softmax"});
}

// ---------------------------------------------------------------- the kernels' three paths
// Contiguous rows shorter than 64 go through blocks of rows, longer ones row by row, and
// distributions along a non-last axis through strided loops. All must agree.

namespace {
// f applied to x along axis 1 of [rows, n], and to xᵀ along axis 0: values and gradients of
// a weighted sum must match (the transposes make the second one strided).
template <class F>
void require_paths_agree(F f, int64_t rows, int64_t n, DType dtype, unsigned seed) {
  Tensor x = random_input({rows, n}, seed, -6, 6).detach().to(dtype).set_requires_grad();
  Tensor xt = transpose(x.detach()).clone().set_requires_grad();
  Tensor y = f(x, 1), yt = f(xt, 0);
  double tolerance = dtype == DType::f32 ? 2e-5 : 1e-12;
  Tensor w = random_input(y.shape(), seed + 1).detach().to(dtype);
  if (y.dim() == 2) {  // softmax-shaped outputs come back transposed
    yt = transpose(yt);
    require_values(yt, y.to_vector(), tolerance);
  } else {
    require_values(yt, y.to_vector(), tolerance);
  }
  backward(add(sum(mul(y, w)), sum(mul(yt, w))));  // x and xt are separate leaves
  require_values(transpose(xt.grad()), x.grad().to_vector(), tolerance);
}
}  // namespace

TEST_CASE("softmax-family kernels: short rows, long rows and strided axes agree", "[softmax]") {
  for (DType dtype : {DType::f32, DType::f64}) {
    for (int64_t n : {3, 10, 63, 64, 200}) {
      INFO("n = " << n << ", " << dtype);
      // 300 rows: several blocks of short rows, and a partial last block
      require_paths_agree([](const Tensor& x, int a) { return softmax(x, a, 0.7); }, 300, n, dtype, 30);
      require_paths_agree([](const Tensor& x, int a) { return log_softmax(x, a, 1.3); }, 300, n, dtype, 31);
      require_paths_agree([](const Tensor& x, int a) { return entropy_logits(x, a, 2.0); }, 300, n, dtype, 32);
      Tensor other = random_input({300, n}, 33, -6, 6).detach().to(dtype);
      require_paths_agree([other](const Tensor& x, int a) {
        return kl_divergence_logits(x, a == 1 ? other : transpose(other), a, 0.9);
      }, 300, n, dtype, 34);
      require_paths_agree([other](const Tensor& x, int a) {
        return kl_divergence_logits(a == 1 ? other : transpose(other), x, a, 1.1);
      }, 300, n, dtype, 35);
    }
  }
}

TEST_CASE("cross_entropy kernels: short rows, long rows and strided classes agree", "[softmax]") {
  for (DType dtype : {DType::f32, DType::f64}) {
    for (int64_t n : {5, 10, 100}) {
      INFO("n = " << n << ", " << dtype);
      std::vector<int64_t> label_values;
      for (int64_t r = 0; r < 150; ++r) label_values.push_back((r * 7) % n);
      Tensor labels = index_tensor(label_values);
      Tensor labels_strided = reshape(labels, {1, 150});
      Tensor probs = softmax(random_input({150, n}, 36).detach(), -1).to(dtype);
      // [150, n] with classes on axis 1, versus [1, n, 150]: classes on axis 1, strided by 150
      auto strided = [](const Tensor& x) { return reshape(transpose(x), {1, x.shape()[1], x.shape()[0]}); };
      Tensor x = random_input({150, n}, 37, -6, 6).detach().to(dtype).set_requires_grad();
      Tensor xs = strided(x.detach()).clone().set_requires_grad();
      double tolerance = dtype == DType::f32 ? 2e-5 : 1e-12;
      for (double eps : {0.0, 0.2}) {
        Tensor a = cross_entropy(x, labels, eps, Reduction::none);
        Tensor b = cross_entropy(xs, labels_strided, eps, Reduction::none);
        require_values(reshape(b, {150}), a.to_vector(), tolerance);
        Tensor c = cross_entropy(x, probs, eps, Reduction::none);
        Tensor d = cross_entropy(xs, strided(probs), eps, Reduction::none);
        require_values(reshape(d, {150}), c.to_vector(), tolerance);
      }
      backward(add(cross_entropy(x, labels, 0.1, Reduction::sum), cross_entropy(x, probs, 0.1, Reduction::sum)));
      backward(add(cross_entropy(xs, labels_strided, 0.1, Reduction::sum),
                   cross_entropy(xs, strided(probs), 0.1, Reduction::sum)));
      require_values(strided(x.grad()), xs.grad().to_vector(), tolerance);
    }
  }
}

TEST_CASE("all -inf rows are the zero distribution and NaN rows stay NaN, on every path",
          "[softmax]") {
  const double inf = std::numeric_limits<double>::infinity();
  for (int64_t n : {3, 100}) {
    std::vector<double> values(3 * n, 0.5);
    for (int64_t j = 0; j < n; ++j) values[j] = -inf;                   // row 0: all -inf
    values[n + 1] = std::nan("");                                        // row 1: one NaN
    for (int64_t j = 0; j < n; ++j) values[2 * n + j] = std::nan("");  // row 2: all NaN
    for (int axis : {1, 0}) {
      Tensor x = tensor(values, {3, n}, DType::f64);
      if (axis == 0) x = transpose(x).clone();
      Tensor p = softmax(x, axis), lp = log_softmax(x, axis);
      Tensor row0 = axis == 1 ? slice(p, 0, 0, 1) : slice(p, 1, 0, 1);
      require_values(row0, std::vector<double>(n, 0.0));
      REQUIRE(std::isinf((axis == 1 ? lp.at({0, 0}) : lp.at({0, 0}))));
      for (int64_t r : {1, 2}) {
        double v = axis == 1 ? p.at({r, 0}) : p.at({0, r});
        INFO("n = " << n << ", axis " << axis << ", row " << r);
        REQUIRE(std::isnan(v));
        REQUIRE(std::isnan(axis == 1 ? lp.at({r, 0}) : lp.at({0, r})));
      }
    }
  }
}

TEST_CASE("softmax and the fused row ops over an empty axis return what PyTorch returns",
          "[softmax]") {
  // PyTorch 1.13, measured: softmax / log_softmax of any empty tensor over any axis is an empty
  // tensor of its shape (and so is its gradient); an empty distribution has KL 0 and entropy 0
  // (F.kl_div(..., log_target=True).sum(-1), Categorical(logits=zeros(5, 0)).entropy());
  // cross_entropy of [N, 0] probability targets is 0 per sample; a mean over no values is NaN.
  for (auto [shape, axis] : std::vector<std::pair<Shape, int>>{
           {{0, 5}, 0}, {{0, 5}, 1}, {{5, 0}, 1}, {{5, 0}, 0}, {{0}, 0}, {{2, 0, 3}, 1}}) {
    INFO("shape " << shape << ", axis " << axis);
    Tensor x = zeros(shape, DType::f64).set_requires_grad();
    for (bool log : {false, true}) {
      Tensor y = log ? log_softmax(x, axis) : softmax(x, axis);
      REQUIRE(y.shape() == shape);
      backward(sum(y));
      REQUIRE(x.grad().shape() == shape);
      x.zero_grad();
    }
    Shape per_distribution;
    for (int d = 0; d < shape.rank(); ++d)
      if (d != axis) per_distribution.push_back(shape[d]);
    Tensor kl = kl_divergence_logits(x, zeros(shape, DType::f64), axis);
    Tensor h = entropy_logits(x, axis);
    REQUIRE(kl.shape() == per_distribution);
    REQUIRE(h.shape() == per_distribution);
    for (double v : kl.to_vector()) REQUIRE(v == 0);
    for (double v : h.to_vector()) REQUIRE(v == 0);
    backward(kl_divergence_logits(x, x, axis, 1.0, Reduction::sum));
    REQUIRE(x.grad().shape() == shape);
  }
  // [5, 0] over the classes: five distributions with nothing in them.
  Tensor no_classes = zeros({5, 0}, DType::f64);
  REQUIRE(kl_divergence_logits(no_classes, no_classes, 1, 1.0, Reduction::batchmean).item() == 0);
  tgtest::require_values(entropy_logits(no_classes, 1), {0, 0, 0, 0, 0});
  tgtest::require_values(cross_entropy(no_classes, no_classes, 0.1, Reduction::none),
                         {0, 0, 0, 0, 0});
  REQUIRE(cross_entropy(no_classes, no_classes, 0.0, Reduction::sum).item() == 0);
  // (PyTorch's mean here is NaN, from dividing by numel / C = 0 / 0; five losses of 0 average to
  // 0, so tapegrad says 0.)
  REQUIRE(cross_entropy(no_classes, no_classes, 0.0, Reduction::mean).item() == 0);
  // [0, 5]: no samples. Sums are 0, means and batchmeans 0 / 0.
  Tensor no_samples = zeros({0, 5}, DType::f64);
  Tensor no_labels = index_tensor({}, {0});
  REQUIRE(cross_entropy(no_samples, no_labels, 0.0, Reduction::none).shape() == Shape{0});
  REQUIRE(cross_entropy(no_samples, no_labels, 0.0, Reduction::sum).item() == 0);
  REQUIRE(std::isnan(cross_entropy(no_samples, no_labels, 0.1, Reduction::mean).item()));
  REQUIRE(std::isnan(
      kl_divergence_logits(no_samples, no_samples, 1, 1.0, Reduction::batchmean).item()));
  REQUIRE(std::isnan(entropy_logits(no_samples, 1, 1.0, Reduction::mean).item()));
}
