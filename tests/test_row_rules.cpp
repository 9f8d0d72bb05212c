// tests/test_row_rules.cpp — the row rules of src/kernels/row_math.h and fused_math.h that both
// backends follow: how the statistics of parts of a row merge (the CPU merges chunks, the CUDA
// kernels merge threads), the all -inf row, NaN and +inf, argmax's ties, logsumexp's special
// values, the label-smoothing weights. Checked directly, and through the CPU backend on rows
// longer than one chunk, so that the CPU test suite covers what the CUDA kernels rely on.
#include <algorithm>
#include <limits>
#include <random>

#include "../src/kernels/fused_math.h"
#include "../src/kernels/row_math.h"
#include "helpers.h"

using namespace tg;
using tgtest::random_input;
using tgtest::require_values;
namespace k = tg::kernels;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
const double kNaN = std::nan("");

// The partial of x[begin, end) computed the way every backend computes one part: the max, then
// Σ e^((x - shift)/T).
k::RowPartial<double> part(const std::vector<double>& x, size_t begin, size_t end, double inv_t) {
  double m = -kInf;
  for (size_t j = begin; j < end; ++j) m = k::row_max(m, x[j]);
  double shift = k::row_shift(m), s = 0;
  for (size_t j = begin; j < end; ++j) s += std::exp(k::shifted(x[j], shift, inv_t));
  return {m, s};
}

// Splits x at `cuts` and merges the parts: left to right, right to left, and as a balanced tree
// (a block reduction's order).
std::vector<k::RowPartial<double>> merged_in_three_orders(const std::vector<double>& x,
                                                          std::vector<size_t> cuts, double inv_t) {
  cuts.insert(cuts.begin(), 0);
  cuts.push_back(x.size());
  std::vector<k::RowPartial<double>> parts;
  for (size_t i = 0; i + 1 < cuts.size(); ++i) parts.push_back(part(x, cuts[i], cuts[i + 1], inv_t));
  k::RowPartial<double> left = k::empty_row_partial<double>(), right = left;
  for (const auto& p : parts) left = k::merge_row_partials(left, p, inv_t);
  for (auto p = parts.rbegin(); p != parts.rend(); ++p) right = k::merge_row_partials(*p, right, inv_t);
  std::vector<k::RowPartial<double>> tree = parts;
  while (tree.size() > 1) {
    std::vector<k::RowPartial<double>> next;
    for (size_t i = 0; i < tree.size(); i += 2)
      next.push_back(i + 1 < tree.size() ? k::merge_row_partials(tree[i], tree[i + 1], inv_t)
                                         : tree[i]);
    tree = next;
  }
  return {left, right, tree[0]};
}

}  // namespace

TEST_CASE("row partials merge to the whole row's statistics, in any split and order", "[rules]") {
  std::mt19937 rng(5);
  std::uniform_real_distribution<double> value(-30, 30);
  for (double inv_t : {1.0, 1 / 0.05, 1 / 7.0}) {
    std::vector<double> x(257);
    for (double& v : x) v = value(rng);
    x[250] = 45;  // the max in a late part: the earlier parts' sums must be rescaled
    k::RowStats<double> whole = k::finish_row_stats(part(x, 0, x.size(), inv_t));
    for (const std::vector<size_t>& cuts :
         {std::vector<size_t>{1}, {100, 101, 200}, {7, 64, 128, 130, 256}}) {
      for (const auto& merged : merged_in_three_orders(x, cuts, inv_t)) {
        k::RowStats<double> stats = k::finish_row_stats(merged);
        REQUIRE(stats.max == whole.max);  // the max is exact
        REQUIRE(stats.log_sum == Approx(whole.log_sum).epsilon(1e-14).margin(1e-14));
      }
    }
  }
  // The empty part is the identity, exactly.
  k::RowPartial<double> p = part({1.5, -2, 3}, 0, 3, 0.5);
  k::RowPartial<double> q = k::merge_row_partials(k::empty_row_partial<double>(), p, 0.5);
  REQUIRE((q.max == p.max && q.sum == p.sum));
  q = k::merge_row_partials(p, k::empty_row_partial<double>(), 0.5);
  REQUIRE((q.max == p.max && q.sum == p.sum));
}

TEST_CASE("row rules: all -inf is the zero distribution; NaN or +inf anywhere makes the row NaN",
          "[rules]") {
  // All -inf: shift 0, Σ 0, log Σ = +inf, so every log-probability is -inf and 1/Σ is taken as 0.
  std::vector<double> minus_inf(5, -kInf);
  for (const auto& merged : merged_in_three_orders(minus_inf, {2, 3}, 1.0)) {
    k::RowStats<double> stats = k::finish_row_stats(merged);
    REQUIRE(stats.max == 0);
    REQUIRE(stats.log_sum == kInf);
    REQUIRE(k::log_probability(-kInf, stats, 1.0) == -kInf);
    REQUIRE(k::inverse_row_sum(merged.sum) == 0);
  }
  // An all -inf part merged with a finite one changes nothing.
  std::vector<double> mixed = {-kInf, -kInf, -kInf, 1.0, 2.0};
  for (const auto& merged : merged_in_three_orders(mixed, {3}, 2.0)) {
    k::RowPartial<double> finite = part(mixed, 3, 5, 2.0);
    REQUIRE((merged.max == finite.max && merged.sum == finite.sum));
  }
  // NaN in any part, first or last, and +inf: the row's Σ is NaN however the parts are merged.
  for (const std::vector<double>& bad :
       {std::vector<double>{kNaN, 1, 2, 3, 4}, {1, 2, 3, 4, kNaN}, {-kInf, -kInf, kNaN, -kInf, -kInf},
        {1, kInf, 2, 3, 4}, {1, 2, 3, 4, kInf}}) {
    for (const auto& merged : merged_in_three_orders(bad, {1, 2, 4}, 1.0)) {
      k::RowStats<double> stats = k::finish_row_stats(merged);
      REQUIRE(std::isnan(stats.log_sum));
      REQUIRE(std::isnan(k::log_probability(1.0, stats, 1.0)));
      REQUIRE(std::isnan(1.0 * k::inverse_row_sum(merged.sum)));
    }
  }
}

TEST_CASE("logsumexp partials: NaN beats +inf beats finite; all -inf gives -inf", "[rules]") {
  auto lse = [](std::vector<double> x, size_t cut, bool reversed) {
    auto piece = [&](size_t b, size_t e) {
      double m = -kInf;
      for (size_t j = b; j < e; ++j) m = k::Maximum{}(x[j], m);
      double s = 0;
      if (k::is_finite_value(m))
        for (size_t j = b; j < e; ++j) s += std::exp(x[j] - m);
      return k::LogSumExpPartial<double>{m, s};
    };
    auto a = piece(0, cut), b = piece(cut, x.size());
    return k::finish_logsumexp(reversed ? k::merge_logsumexp(b, a) : k::merge_logsumexp(a, b));
  };
  for (bool reversed : {false, true}) {
    REQUIRE(lse({1, 2, 3, 4}, 2, reversed) == Approx(std::log(std::exp(1) + std::exp(2) +
                                                              std::exp(3) + std::exp(4))));
    REQUIRE(lse({-kInf, -kInf, -kInf}, 1, reversed) == -kInf);
    REQUIRE(lse({-kInf, -kInf, 5}, 2, reversed) == 5);
    REQUIRE(lse({1, kInf, 3}, 2, reversed) == kInf);
    REQUIRE(std::isnan(lse({kNaN, kInf, 3}, 1, reversed)));
    REQUIRE(std::isnan(lse({kInf, 2, kNaN}, 1, reversed)));
    REQUIRE(lse({1000, 1000}, 1, reversed) == Approx(1000 + std::log(2.0)));  // no overflow
  }
  REQUIRE(k::mean_scale(4) == 0.25);
  REQUIRE(std::isnan(k::mean_scale(0)));
}

TEST_CASE("argmax rule: the first largest, the first NaN; merging winners in any order agrees",
          "[rules]") {
  for (const std::vector<double>& x :
       {std::vector<double>{1, 3, 2, 3, 0}, {-kInf, -kInf}, {1, kNaN, 5, kNaN}, {kInf, 1, kInf},
        {2, 2, 2, 2, 2}, {-1, -5, kNaN}}) {
    // The left-to-right scan the CPU does.
    int64_t best = 0;
    for (size_t j = 1; j < x.size(); ++j)
      if (k::argmax_prefers(x[j], int64_t(j), x[best], best)) best = int64_t(j);
    // Every element merged into the identity, in reverse and in a shuffled order.
    std::vector<size_t> order(x.size());
    for (size_t j = 0; j < order.size(); ++j) order[j] = j;
    for (int pass = 0; pass < 3; ++pass) {
      if (pass == 1) std::reverse(order.begin(), order.end());
      if (pass == 2) std::shuffle(order.begin(), order.end(), std::mt19937(3));
      k::ArgBest<double> merged = k::empty_arg_best<double>();
      for (size_t j : order) merged = k::merge_arg_best(merged, {x[j], int64_t(j)});
      REQUIRE(merged.index == best);
    }
  }
}

TEST_CASE("cross-entropy row rules: smoothed label targets sum to 1; 0·log 0 terms are 0", "[rules]") {
  const double eps = 0.1, inv_n = 1.0 / 4;
  double total = 0;
  for (int j = 0; j < 4; ++j) total += k::label_target(j == 2, eps, inv_n);
  REQUIRE(total == Approx(1.0));
  REQUIRE(k::label_target(true, eps, inv_n) == Approx(0.9 + 0.025));
  REQUIRE(k::weighted_log_probability(0.0, -kInf) == 0);
  REQUIRE(k::weighted_log_probability(0.5, -kInf) == -kInf);
  // Without smoothing a -inf logit elsewhere in the row does not reach the loss.
  REQUIRE(k::label_cross_entropy(-0.5, -kInf, 0.0, inv_n) == 0.5);
  REQUIRE(k::label_cross_entropy(-0.5, -kInf, eps, inv_n) == kInf);
  REQUIRE(k::inverse_temperature<double>(4.0, nullptr, false, 3) == 0.25);
  double per_row[] = {2.0, 0.5};
  REQUIRE(k::inverse_temperature(1.0, per_row, false, 1) == 2.0);
  REQUIRE(k::inverse_temperature(1.0, per_row, true, 1) == 0.5);
}

// Rows longer than the CPU's chunk (1024) go through the merge; these must agree with the same
// rows computed in f64 (where the chunks' rounding is far below the tolerance).
TEST_CASE("CPU rows longer than a chunk: log_softmax, KL, cross-entropy, logsumexp agree with f64",
          "[rules]") {
  for (int64_t n : {1500, 4097}) {
    Tensor x64 = random_input({3, n}, 40, -20, 20).detach();
    std::vector<double> v = x64.to_vector();
    v[2 * n - 1] = 35;                            // row 1: the max in its last chunk
    for (int64_t j = 0; j < 1200; ++j) v[2 * n + j] = -kInf;  // row 2: a first chunk of -inf
    x64 = tensor(v, {3, n}, DType::f64);
    Tensor y64 = random_input({3, n}, 41, -5, 5).detach();
    Tensor labels = index_tensor({n - 1, 0, n / 2});
    Tensor x32 = x64.to(DType::f32), y32 = y64.to(DType::f32);
    auto close = [](const Tensor& f32, const Tensor& f64, double rtol) {
      std::vector<double> a = f32.to_vector(), b = f64.to_vector();
      double scale = 0;
      for (double e : b)
        if (std::isfinite(e)) scale = std::max(scale, std::fabs(e));
      for (size_t i = 0; i < a.size(); ++i) {
        INFO("element " << i << ": " << a[i] << " vs " << b[i]);
        if (!std::isfinite(b[i])) REQUIRE(a[i] == b[i]);
        else REQUIRE(std::fabs(a[i] - b[i]) <= rtol * (std::fabs(b[i]) + scale));
      }
    };
    close(log_softmax(x32, 1, 0.7), log_softmax(x64, 1, 0.7), 1e-5);
    close(kl_divergence_logits(x32, y32, 1, 1.3, Reduction::none),
          kl_divergence_logits(x64, y64, 1, 1.3, Reduction::none), 1e-5);
    close(cross_entropy(x32, labels, 0.0, Reduction::none),
          cross_entropy(x64, labels, 0.0, Reduction::none), 1e-5);
    close(logsumexp(x32, 1), logsumexp(x64, 1), 1e-5);
    // The f64 rows against their definition.
    double m = -kInf, s = 0;
    for (int64_t j = 0; j < n; ++j) m = std::max(m, v[n + j] / 0.7);
    for (int64_t j = 0; j < n; ++j) s += std::exp(v[n + j] / 0.7 - m);
    REQUIRE(log_softmax(x64, 1, 0.7).at({1, n - 1}) == Approx(v[2 * n - 1] / 0.7 - m - std::log(s)));
  }
}

TEST_CASE("CPU: one row of 10^6 elements (f32) agrees with f64 within 1e-4", "[rules]") {
  const int64_t n = 1000000;
  Generator g(11);
  Tensor x64 = mul(randn({1, n}, g, DType::f64), 8.0);
  Tensor x32 = x64.to(DType::f32);
  Tensor ref = log_softmax(x32.to(DType::f64), 1);  // the same rounded inputs, in f64
  std::vector<double> a = log_softmax(x32, 1).to_vector(), b = ref.to_vector();
  double scale = 0;
  for (double e : b) scale = std::max(scale, std::fabs(e));
  double worst = 0;
  for (int64_t i = 0; i < n; ++i) worst = std::max(worst, std::fabs(a[i] - b[i]) / (std::fabs(b[i]) + scale));
  INFO("worst relative difference " << worst);
  REQUIRE(worst <= 1e-4);
  REQUIRE(logsumexp(x32).item() == Approx(logsumexp(x32.to(DType::f64)).item()).epsilon(1e-6));
}

TEST_CASE("a NaN in the last chunk of a long row makes the whole row NaN, only that row", "[rules]") {
  const int64_t n = 3000;
  std::vector<double> v(2 * n, 0.25);
  v[n - 1] = kNaN;
  Tensor x = tensor(v, {2, n});
  Tensor lp = log_softmax(x, 1), p = softmax(x, 1);
  for (const Tensor& y : {lp, p}) {
    REQUIRE(std::isnan(y.at({0, 0})));
    REQUIRE(std::isnan(y.at({0, 1500})));
  }
  REQUIRE(lp.at({1, 7}) == Approx(-std::log(3000.0)));
  REQUIRE(p.at({1, 2999}) == Approx(1 / 3000.0));
  REQUIRE(std::isnan(cross_entropy(x, index_tensor({3, 4}), 0.0, Reduction::none).at({0})));
}
