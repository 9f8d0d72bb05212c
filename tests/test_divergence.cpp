// tests/test_divergence.cpp — kl_div, KL from logits, entropy, Jensen-Shannon and total
// variation: the source documents' numbers, PyTorch's values, gradcheck (ordinary and extreme
// inputs), stability, and the identities (CE = H + KL, KL ≥ 0, asymmetry, JS ≤ ln 2, TV ∈ [0,1]).
#include <cmath>
#include <limits>

#include "helpers.h"

using namespace tg;
using tgtest::random_input;
using tgtest::require_error;
using tgtest::all_finite;
using tgtest::require_values;

namespace {
const double kLn2 = std::log(2.0);

Tensor probs(const std::vector<double>& values, const Shape& shape = {}) {
  return shape.rank() ? tensor(values, shape, DType::f64) : tensor(values, DType::f64);
}
// Random distributions along the last axis, every probability ≥ ~0.01 (for gradcheck).
Tensor random_probs(const Shape& shape, unsigned seed) {
  return softmax(random_input(shape, seed, -2, 2).detach(), -1).set_requires_grad();
}
}  // namespace

// ---------------------------------------------------------------- the source documents' numbers

TEST_CASE("KL of P = [0.5, 0.5] and Q = [0.9, 0.1]: the document's nats and bits", "[divergence]") {
  Tensor p = probs({0.5, 0.5}), q = probs({0.9, 0.1});
  double p_q = kl_div(log(q), p, Reduction::sum).item();
  double q_p = kl_div(log(p), q, Reduction::sum).item();
  REQUIRE(p_q == Approx(0.5108).margin(5e-5));
  REQUIRE(p_q / kLn2 == Approx(0.7370).margin(5e-5));  // the document's "≈ 0.74" is in bits
  REQUIRE(q_p == Approx(0.3681).margin(5e-5));
  REQUIRE(q_p / kLn2 == Approx(0.5310).margin(5e-5));
  // the same from logits (log-probabilities are logits of their own distribution)
  REQUIRE(kl_divergence_logits(log(p), log(q)).item() == Approx(p_q).epsilon(1e-12));
  REQUIRE(kl_divergence_logits(log(q), log(p)).item() == Approx(q_p).epsilon(1e-12));
}

TEST_CASE("kl_div(log q, p, sum) for p = [0.4, 0.3, 0.3], q = [0.5, 0.25, 0.25] is 0.020136",
          "[divergence]") {
  Tensor p = probs({0.4, 0.3, 0.3}), q = probs({0.5, 0.25, 0.25});
  REQUIRE(kl_div(log(q), p, Reduction::sum).item() == Approx(0.02013551355068882).epsilon(1e-12));
  REQUIRE(kl_div(log(q).to(DType::f32), p.to(DType::f32), Reduction::sum).item() ==
          Approx(0.020136).margin(5e-7));
}

// ---------------------------------------------------------------- kl_div

TEST_CASE("kl_div matches PyTorch for every reduction and for log_target", "[divergence]") {
  Tensor input = probs({-1.2, -0.8, -1.5, -0.3, -2.0, -1.9}, {2, 3});
  Tensor target = probs({0.2, 0.5, 0.3, 0.0, 0.6, 0.4}, {2, 3});
  require_values(kl_div(input, target, Reduction::none),
                 {-0.0818875824868201, 0.05342640972002738, 0.08880815870221914, 0.0,
                  0.8935046257404056, 0.393483707250338},
                 1e-14);
  REQUIRE(kl_div(input, target, Reduction::sum).item() == Approx(1.3473353189261699).epsilon(1e-13));
  REQUIRE(kl_div(input, target).item() == Approx(0.22455588648769498).epsilon(1e-13));  // mean
  REQUIRE(kl_div(input, target, Reduction::batchmean).item() == Approx(0.6736676594630849).epsilon(1e-13));
  Tensor log_target = log(probs({0.2, 0.5, 0.3, 0.1, 0.6, 0.3}, {2, 3}));
  REQUIRE(kl_div(input, log_target, Reduction::sum, true).item() ==
          Approx(0.9624012610786464).epsilon(1e-13));
}

TEST_CASE("kl_div: 0·log 0 = 0, with finite gradients where the target is 0", "[divergence]") {
  const double inf = std::numeric_limits<double>::infinity();
  for (bool log_target : {false, true}) {
    Tensor input = probs({-inf, std::log(0.5), std::log(0.5)}).set_requires_grad();
    Tensor target = log_target ? probs({-inf, std::log(0.5), std::log(0.5)}) : probs({0, 0.5, 0.5});
    target.set_requires_grad();
    Tensor loss = kl_div(input, target, Reduction::sum, log_target);
    REQUIRE(loss.item() == 0);  // q = p, with 0·(log 0 - log 0) = 0
    backward(loss);
    REQUIRE(all_finite(input.grad()));
    REQUIRE(all_finite(target.grad()));
    REQUIRE(input.grad().at({0}) == 0);
    REQUIRE(target.grad().at({0}) == 0);
  }
}

TEST_CASE("gradcheck: kl_div for both inputs, every reduction, with and without log_target",
          "[divergence]") {
  Tensor input = log(random_probs({3, 4}, 1)).detach().set_requires_grad();
  Tensor target = random_probs({3, 4}, 2);
  Tensor log_target = log(target).detach().set_requires_grad();
  for (Reduction r : {Reduction::none, Reduction::sum, Reduction::mean, Reduction::batchmean}) {
    REQUIRE_GRADCHECK([r](const std::vector<Tensor>& in) { return kl_div(in[0], in[1], r); }, {input, target});
    REQUIRE_GRADCHECK([r](const std::vector<Tensor>& in) { return kl_div(in[0], in[1], r, true); },
                      {input, log_target});
  }
  // extreme log-probabilities (-50) and a broadcast target
  Tensor extreme = tensor({-50, -1e-20, -25, -0.5}, {2, 2}, DType::f64).set_requires_grad();
  Tensor row = probs({0.3, 0.7}, {2}).set_requires_grad();
  REQUIRE_GRADCHECK([](const std::vector<Tensor>& in) { return kl_div(in[0], in[1], Reduction::sum); }, {extreme, row});
}

// ---------------------------------------------------------------- KL from logits

TEST_CASE("kl_divergence_logits equals kl_div(log_softmax(q/T), softmax(p/T)) per distribution",
          "[divergence]") {
  Tensor p = random_input({4, 6}, 3, -3, 3).detach(), q = random_input({4, 6}, 4, -3, 3).detach();
  for (double T : {0.5, 1.0, 3.0}) {
    std::vector<double> expected =
        sum(kl_div(log_softmax(q, -1, T), softmax(p, -1, T), Reduction::none), -1).to_vector();
    require_values(kl_divergence_logits(p, q, -1, T), expected, 1e-13);
    REQUIRE(kl_divergence_logits(p, q, -1, T, Reduction::batchmean).item() ==
            Approx(kl_div(log_softmax(q, -1, T), softmax(p, -1, T), Reduction::batchmean).item()).epsilon(1e-12));
  }
  // along axis 0: the columns are the distributions
  require_values(kl_divergence_logits(p, q, 0), kl_divergence_logits(transpose(p), transpose(q), 1).to_vector(), 1e-13);
}

TEST_CASE("gradcheck: kl_divergence_logits for both logits, several temperatures and axes",
          "[divergence]") {
  Tensor p = random_input({3, 5}, 5, -2, 2), q = random_input({3, 5}, 6, -2, 2);
  for (double T : {1.0, 0.4, 6.0})
    for (int axis : {0, 1})
      REQUIRE_GRADCHECK([T, axis](const std::vector<Tensor>& in) { return kl_divergence_logits(in[0], in[1], axis, T); },
                        {p, q});
  REQUIRE_GRADCHECK([](const std::vector<Tensor>& in) {
    return kl_divergence_logits(in[0], in[1], -1, 2.0, Reduction::batchmean);
  }, {p, q});
}

TEST_CASE("gradcheck: kl_divergence_logits at logits ±50 and T = 0.05 and 100", "[divergence]") {
  Tensor p = tensor({50, -50, 10, 0, -20, 49, 30, -30}, {2, 4}, DType::f64).set_requires_grad();
  Tensor q = tensor({-50, 50, 0, 10, 45, -50, 30, 29}, {2, 4}, DType::f64).set_requires_grad();
  for (double T : {0.05, 1.0, 100.0})
    REQUIRE_GRADCHECK([T](const std::vector<Tensor>& in) { return kl_divergence_logits(in[0], in[1], -1, T); }, {p, q});
}

TEST_CASE("gradcheck: kl_divergence_logits with the temperature as a tensor", "[divergence]") {
  Tensor p = random_input({3, 4}, 7, -2, 2), q = random_input({3, 4}, 8, -2, 2);
  Tensor one = tensor({2.5}, Shape{}, DType::f64).set_requires_grad();
  Tensor per_row = random_input({3, 1}, 9, 0.2, 4);
  for (Tensor T : {one, per_row})
    REQUIRE_GRADCHECK([](const std::vector<Tensor>& in) { return kl_divergence_logits(in[0], in[1], -1, in[2]); },
                      {p, q, T});
  // temperature alone (calibration: the logits are data)
  Tensor pd = p.detach(), qd = q.detach();
  REQUIRE_GRADCHECK([pd, qd](const std::vector<Tensor>& in) {
    return kl_divergence_logits(pd, qd, -1, in[0], Reduction::sum);
  }, {tensor({0.05}, Shape{}, DType::f64).set_requires_grad()});
}

TEST_CASE("kl_divergence_logits is finite for logits ±1e4 and T ∈ [0.05, 100], float32",
          "[divergence]") {
  for (double T : {0.05, 1.0, 100.0}) {
    Tensor p = tensor({1e4, -1e4, 0, 5e3, -1e4, 1e4}, {2, 3}).set_requires_grad();
    Tensor q = tensor({-1e4, 1e4, 1e4, 0, 1e4, -1e4}, {2, 3}).set_requires_grad();
    Tensor kl = kl_divergence_logits(p, q, -1, T);
    REQUIRE(all_finite(kl));
    // row 0: P is all on class 0, Q split between classes 1 and 2: KL = -log Q_0 = 2e4/T + ln 2
    REQUIRE(kl.at({0}) == Approx(2e4 / T + kLn2).epsilon(1e-6));
    backward(sum(kl));
    REQUIRE(all_finite(p.grad()));
    REQUIRE(all_finite(q.grad()));
  }
}

TEST_CASE("KL ≥ 0, = 0 exactly for equal distributions, and asymmetric", "[divergence]") {
  Tensor p = random_input({20, 5}, 10, -3, 3).detach(), q = random_input({20, 5}, 11, -3, 3).detach();
  for (double v : kl_divergence_logits(p, q).to_vector()) REQUIRE(v > 0);
  for (double v : kl_divergence_logits(p, p).to_vector()) REQUIRE(v == 0);
  for (double v : kl_divergence_logits(p, add(p, 7.5)).to_vector()) REQUIRE(std::abs(v) < 1e-14);
  std::vector<double> forward = kl_divergence_logits(p, q).to_vector();
  std::vector<double> reverse = kl_divergence_logits(q, p).to_vector();
  int different = 0;
  for (size_t i = 0; i < forward.size(); ++i) different += std::abs(forward[i] - reverse[i]) > 1e-6;
  REQUIRE(different == static_cast<int>(forward.size()));
}

TEST_CASE("cross-entropy = entropy + KL", "[divergence]") {
  Tensor p_logits = random_input({6, 7}, 12, -3, 3).detach();
  Tensor q_logits = random_input({6, 7}, 13, -3, 3).detach();
  Tensor p = softmax(p_logits, -1);
  std::vector<double> ce = cross_entropy(q_logits, p, 0.0, Reduction::none).to_vector();
  std::vector<double> h = entropy(p).to_vector();
  std::vector<double> h_logits = entropy_logits(p_logits).to_vector();
  std::vector<double> kl = kl_divergence_logits(p_logits, q_logits).to_vector();
  for (size_t i = 0; i < ce.size(); ++i) {
    REQUIRE(ce[i] == Approx(h[i] + kl[i]).epsilon(1e-12));
    REQUIRE(h_logits[i] == Approx(h[i]).epsilon(1e-12));
  }
}

// ---------------------------------------------------------------- entropy

TEST_CASE("entropy and entropy_logits match PyTorch's Categorical.entropy()", "[divergence]") {
  require_values(entropy(probs({0.1, 0.2, 0.7, 0.5, 0.5, 0.0}, {2, 3})),
                 {0.8018185525433373, 0.6931471805599453}, 1e-14);
  Tensor x = probs({1, 2, 3, -1, 0.5, -0.5, 4, 2}, {2, 4});
  require_values(entropy_logits(x, -1, 2.0), {1.192979118010953, 1.0509625348966525}, 1e-13);
  REQUIRE(entropy_logits(zeros({10}, DType::f64)).item() == Approx(std::log(10.0)).epsilon(1e-14));
  REQUIRE(entropy(probs({1, 0, 0})).item() == 0);
}

TEST_CASE("gradcheck: entropy and entropy_logits", "[divergence]") {
  REQUIRE_GRADCHECK([](const std::vector<Tensor>& in) { return entropy(in[0]); }, {random_probs({3, 4}, 14)});
  Tensor x = random_input({3, 4}, 15, -3, 3);
  for (double T : {1.0, 0.2, 20.0})
    REQUIRE_GRADCHECK([T](const std::vector<Tensor>& in) { return entropy_logits(in[0], -1, T); }, {x});
  Tensor extreme = tensor({50, -50, 0, 49, -50, -49}, {2, 3}, DType::f64).set_requires_grad();
  REQUIRE_GRADCHECK([](const std::vector<Tensor>& in) { return entropy_logits(in[0], -1, 1.0, Reduction::mean); }, {extreme});
}

// ---------------------------------------------------------------- Jensen-Shannon, total variation

TEST_CASE("JS is symmetric, ≤ ln 2 (= ln 2 for disjoint supports), 0 for equal distributions",
          "[divergence]") {
  Tensor p = softmax(random_input({30, 6}, 16, -4, 4).detach(), -1);
  Tensor q = softmax(random_input({30, 6}, 17, -4, 4).detach(), -1);
  std::vector<double> pq = js_divergence(p, q).to_vector(), qp = js_divergence(q, p).to_vector();
  for (size_t i = 0; i < pq.size(); ++i) {
    REQUIRE(pq[i] == Approx(qp[i]).epsilon(1e-14));
    REQUIRE(pq[i] > 0);
    REQUIRE(pq[i] <= kLn2);
  }
  REQUIRE(js_divergence(probs({1, 0, 0}), probs({0, 0.5, 0.5})).item() == Approx(kLn2).epsilon(1e-15));
  REQUIRE(js_divergence(p, p, -1, Reduction::sum).item() == 0);
  // the definition: ½KL(P ‖ M) + ½KL(Q ‖ M)
  Tensor m = mul(add(p, q), 0.5);
  double expected = 0.5 * (kl_div(log(m), p, Reduction::sum).item() + kl_div(log(m), q, Reduction::sum).item());
  REQUIRE(js_divergence(p, q, -1, Reduction::sum).item() == Approx(expected).epsilon(1e-12));
}

TEST_CASE("total variation lies in [0, 1]: 0 for equal, 1 for disjoint distributions", "[divergence]") {
  REQUIRE(total_variation(probs({0.5, 0.5}), probs({0.9, 0.1})).item() == Approx(0.4).epsilon(1e-15));
  REQUIRE(total_variation(probs({1, 0, 0}), probs({0, 0.3, 0.7})).item() == 1);
  Tensor p = softmax(random_input({30, 6}, 18, -4, 4).detach(), -1);
  Tensor q = softmax(random_input({30, 6}, 19, -4, 4).detach(), -1);
  for (double v : total_variation(p, q).to_vector()) {
    REQUIRE(v > 0);
    REQUIRE(v <= 1);
  }
  REQUIRE(total_variation(p, p, -1, Reduction::sum).item() == 0);
}

TEST_CASE("gradcheck: js_divergence and total_variation", "[divergence]") {
  Tensor p = random_probs({3, 4}, 20), q = random_probs({3, 4}, 21);
  REQUIRE_GRADCHECK([](const std::vector<Tensor>& in) { return js_divergence(in[0], in[1]); }, {p, q});
  REQUIRE_GRADCHECK([](const std::vector<Tensor>& in) { return total_variation(in[0], in[1], -1, Reduction::mean); },
                    {p, q});  // random distributions: no ties, away from the kink
  REQUIRE_GRADCHECK([](const std::vector<Tensor>& in) { return js_divergence(in[0], in[1], 0); }, {p, q});
}

TEST_CASE("divergences reject mismatched shapes and bad temperatures", "[divergence]") {
  require_error([] { kl_divergence_logits(zeros({2, 3}), zeros({2, 4})); },
                {"kl_divergence_logits", "[2, 3]", "[2, 4]"});
  require_error([] { kl_divergence_logits(zeros({2, 3}), zeros({2, 3}), -1, 0.0); },
                {"kl_divergence_logits", "temperature"});
  require_error([] { kl_div(zeros({2, 3}), zeros({4})); }, {"kl_div", "broadcast"});
  require_error([] { js_divergence(zeros({3}), zeros({4})); }, {"js_divergence", "p [3]", "q [4]"});
  require_error([] { entropy_logits(zeros({3}), -1, -2.0); }, {"entropy_logits", "temperature"});
}

TEST_CASE("gradcheck at extreme inputs: entropy, js_divergence, total_variation with probabilities "
          "down to 1e-4", "[divergence]") {
  // (gradcheck's finite-difference step is 1e-6, so smaller probabilities cannot be probed; the
  // kl_div test above covers exact zeros)
  Tensor p = probs({1e-4, 0.3, 0.7 - 1e-4, 0.5, 0.5 - 2e-4, 2e-4}, {2, 3}).set_requires_grad();
  Tensor q = probs({0.6, 1e-4, 0.4 - 1e-4, 3e-4, 0.2, 0.8 - 3e-4}, {2, 3}).set_requires_grad();
  REQUIRE_GRADCHECK([](const std::vector<Tensor>& in) { return entropy(in[0]); }, {p});
  REQUIRE_GRADCHECK([](const std::vector<Tensor>& in) { return js_divergence(in[0], in[1]); }, {p, q});
  REQUIRE_GRADCHECK([](const std::vector<Tensor>& in) { return total_variation(in[0], in[1]); }, {p, q});
}

TEST_CASE("entropy_logits and kl_div stay finite at logits ±1e4, T ∈ [0.05, 100] (float32)",
          "[divergence]") {
  for (double T : {0.05, 1.0, 100.0}) {
    Tensor x = tensor({1e4, -1e4, 0, -1e4, 1e4, 1e4}, {2, 3}).set_requires_grad();
    Tensor h = entropy_logits(x, -1, T);
    REQUIRE(all_finite(h));
    REQUIRE(h.at({1}) == Approx(kLn2).margin(1e-6));  // two equal maxima, the rest ~e^(-2e4/T)
    Tensor target = softmax(tensor({1, 2, 3, 3, 2, 1}, {2, 3}), -1);
    Tensor loss = add(sum(h), kl_div(log_softmax(x, -1, T), target, Reduction::batchmean));
    REQUIRE(std::isfinite(loss.item()));
    backward(loss);
    REQUIRE(all_finite(x.grad()));
  }
}
