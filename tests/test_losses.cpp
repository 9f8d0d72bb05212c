// tests/test_losses.cpp — the training losses of functional.h: known values (PyTorch 1.13's
// numbers), gradcheck at ordinary and extreme inputs, stability, identities and errors.
#include <cmath>
#include <limits>

#include "helpers.h"

using namespace tg;
using tgtest::random_input;
using tgtest::require_error;
using tgtest::all_finite;
using tgtest::require_values;

// ---------------------------------------------------------------- bce_with_logits

TEST_CASE("bce_with_logits matches PyTorch's values and gradients", "[losses]") {
  Tensor x = tensor({-3, -0.5, 0, 0.5, 3, 20}, DType::f64).set_requires_grad();
  Tensor y = tensor({0, 1, 0.3, 1, 0, 1}, DType::f64).set_requires_grad();
  // torch.nn.functional.binary_cross_entropy_with_logits(x, y, reduction='none')
  require_values(bce_with_logits(x, y, Reduction::none),
                 {0.048587351573741965, 0.9740769841801067, 0.6931471805599453,
                  0.4740769841801067, 3.048587351573742, 2.0611536900435727e-09},
                 1e-12);
  Tensor total = bce_with_logits(x, y, Reduction::sum);
  REQUIRE(total.item() == Approx(5.238475854128796).epsilon(1e-12));
  backward(total);
  require_values(x.grad(), {0.04742587317756678, -0.6224593312018546, 0.2, -0.3775406687981454,
                            0.9525741268224334, -2.06115369216775e-09},
                 1e-12);
  require_values(y.grad(), {3, 0.5, 0, -0.5, -3, -20}, 1e-12);
  REQUIRE(bce_with_logits(x, y, Reduction::mean).item() == Approx(5.238475854128796 / 6));
  REQUIRE(bce_with_logits(x, y, Reduction::batchmean).item() == Approx(5.238475854128796 / 6));
}

TEST_CASE("bce_with_logits equals -[y log σ(x) + (1-y) log(1-σ(x))] at moderate logits",
          "[losses]") {
  Tensor x = random_input({4, 5}, 1, -4, 4).detach(), y = random_input({4, 5}, 2, 0, 1).detach();
  Tensor s = sigmoid(x);
  Tensor reference = neg(add(mul(y, log(s)), mul(sub(1.0, y), log(sub(1.0, s)))));
  std::vector<double> expected = reference.to_vector();
  require_values(bce_with_logits(x, y, Reduction::none), expected, 1e-12);
}

TEST_CASE("gradcheck: bce_with_logits, every reduction, logits up to ±50", "[losses]") {
  Tensor y = random_input({3, 4}, 3, 0, 1);
  for (Reduction r : {Reduction::none, Reduction::sum, Reduction::mean, Reduction::batchmean}) {
    Tensor x = random_input({3, 4}, 4, -3, 3);
    REQUIRE_GRADCHECK([r](const std::vector<Tensor>& in) { return bce_with_logits(in[0], in[1], r); },
                      {x, y});
  }
  Tensor extreme = tensor({-50, -20, 20, 50, -35, 35}, {2, 3}, DType::f64).set_requires_grad();
  Tensor targets = tensor({0, 1, 0.5, 1, 0.2, 0}, {2, 3}, DType::f64).set_requires_grad();
  REQUIRE_GRADCHECK([](const std::vector<Tensor>& in) { return bce_with_logits(in[0], in[1], Reduction::sum); },
                    {extreme, targets});
}

TEST_CASE("bce_with_logits is finite and exact for logits of ±1e4", "[losses]") {
  for (DType dtype : {DType::f32, DType::f64}) {
    Tensor x = tensor({1e4, 1e4, -1e4, -1e4}, dtype).set_requires_grad();
    Tensor y = tensor({1, 0, 1, 0}, dtype);
    require_values(bce_with_logits(x, y, Reduction::none), {0, 1e4, 1e4, 0}, 1e-6);
    backward(bce_with_logits(x, y, Reduction::sum));
    require_values(x.grad(), {0, 1, -1, 0}, 1e-6);
  }
}

TEST_CASE("bce_with_logits sums a float32 batch in double: agrees with float64", "[losses]") {
  Tensor x64 = random_input({128, 784}, 5, -8, 8).detach();
  Tensor y64 = random_input({128, 784}, 6, 0, 1).detach();
  double reference = bce_with_logits(x64, y64, Reduction::sum).item();
  double single = bce_with_logits(x64.to(DType::f32), y64.to(DType::f32), Reduction::sum).item();
  REQUIRE(single == Approx(reference).epsilon(1e-6));
}

TEST_CASE("bce_with_logits rejects mismatched shapes and integer tensors", "[losses]") {
  require_error([] { bce_with_logits(zeros({2, 3}), zeros({3, 2})); },
                {"bce_with_logits", "[2, 3]", "[3, 2]", "same shape"});
  require_error([] { bce_with_logits(zeros({2}), zeros({2}, DType::f64)); },
                {"bce_with_logits", "dtypes differ"});
  require_error([] { bce_with_logits(index_tensor({1, 0}), zeros({2})); },
                {"bce_with_logits", "f32 or f64"});
}

// ---------------------------------------------------------------- cross_entropy and nll

namespace {
Tensor ce_logits() {
  return tensor({2.0, -1.0, 0.5, 0.1, 0.3, 0.2, -0.7, 1.5, -2, 3, 0, 1}, {3, 4}, DType::f64)
      .set_requires_grad();
}
}  // namespace

TEST_CASE("cross_entropy with labels and label smoothing matches PyTorch", "[losses]") {
  Tensor labels = index_tensor({0, 3, 1});
  Tensor x = ce_logits();
  require_values(cross_entropy(x, labels, 0.0, Reduction::none),
                 {0.35240593810343074, 0.5214860964534306, 0.1755153626167145}, 1e-14);
  REQUIRE(cross_entropy(x, labels, 0.0, Reduction::sum).item() == Approx(1.0494073971735758).epsilon(1e-14));
  REQUIRE(cross_entropy(x, labels).item() == Approx(0.3498024657245253).epsilon(1e-14));
  require_values(cross_entropy(x, labels, 0.1, Reduction::none),
                 {0.5124059381034307, 0.6389860964534306, 0.4255153626167145}, 1e-14);
  Tensor loss = cross_entropy(x, labels, 0.1);
  REQUIRE(loss.item() == Approx(0.5256357990578586).epsilon(1e-14));
  backward(loss);
  require_values(x.grad(),
                 {-0.07400176942837515, 0.003333348259551301, 0.04395310604861201, 0.02671531512021194,
                  0.05126674532616042, 0.04559504795566309, 0.013592310297695236, -0.11045410357951876,
                  -0.006448899112594555, -0.028658497512489275, 0.0055908568384501565, 0.029516539786633763},
                 1e-14);
  // probability targets, smoothed: F.cross_entropy(x, p, label_smoothing=0.2)
  Tensor p = tensor({0.1, 0.2, 0.3, 0.4, 0.25, 0.25, 0.25, 0.25, 0, 0, 1, 0}, {3, 4}, DType::f64);
  REQUIRE(cross_entropy(x.detach(), p, 0.2).item() == Approx(2.297469132391192).epsilon(1e-14));
}

TEST_CASE("cross_entropy over [N, C, d] logits uses axis 1, like PyTorch", "[losses]") {
  // x3 = torch.arange(24).reshape(2, 3, 4).sin() * 3; labels [[0,1,2,1],[2,2,0,1]]; ε = 0.05
  std::vector<double> values(24);
  for (int i = 0; i < 24; ++i) values[i] = 3 * std::sin(double(i));
  Tensor x3 = tensor(values, {2, 3, 4}, DType::f64).set_requires_grad();
  Tensor labels = index_tensor({0, 1, 2, 1, 2, 2, 0, 1}, {2, 4});
  REQUIRE(cross_entropy(x3, labels, 0.05).item() == Approx(1.9485300260794702).epsilon(1e-14));
  REQUIRE_GRADCHECK([labels](const std::vector<Tensor>& in) { return cross_entropy(in[0], labels, 0.05); }, {x3});
  // a single distribution: logits [C], a 0-d label
  Tensor single = tensor({1, 2, 0.5}, DType::f64);
  REQUIRE(cross_entropy(single, reshape(index_tensor({1}), Shape{})).item() ==
          Approx(-log_softmax(single, 0).at({1})).epsilon(1e-14));
}

TEST_CASE("label smoothing's target is (1-ε)·onehot + ε/K: the gradient is softmax - target",
          "[losses]") {
  const double eps = 0.1;
  const int64_t classes = 4;
  Tensor x = ce_logits();
  Tensor labels = index_tensor({0, 3, 1});
  backward(cross_entropy(x, labels, eps, Reduction::sum));
  // target = softmax(x) - grad
  std::vector<double> target = sub(softmax(x.detach(), -1), x.grad()).to_vector();
  const int64_t label_of[3] = {0, 3, 1};
  for (int64_t r = 0; r < 3; ++r)
    for (int64_t c = 0; c < classes; ++c)
      REQUIRE(target[r * classes + c] ==
              Approx((c == label_of[r] ? 1 - eps : 0) + eps / classes).margin(1e-14));
  // and the loss is the cross-entropy against that smoothed distribution
  Tensor smoothed = add(mul(one_hot(labels, classes, DType::f64), 1 - eps), eps / classes);
  require_values(cross_entropy(x.detach(), labels, eps, Reduction::none),
                 cross_entropy(x.detach(), smoothed, 0.0, Reduction::none).to_vector(), 1e-14);
  require_values(cross_entropy(x.detach(), labels, eps, Reduction::none),
                 neg(sum(mul(smoothed, log_softmax(x.detach(), -1)), -1)).to_vector(), 1e-14);
}

TEST_CASE("gradcheck: cross_entropy with labels, smoothing and probability targets", "[losses]") {
  Tensor labels = index_tensor({2, 0, 1, 2});
  Tensor x = random_input({4, 3}, 7, -2, 2);
  for (double eps : {0.0, 0.1, 1.0})
    for (Reduction r : {Reduction::none, Reduction::sum, Reduction::mean})
      REQUIRE_GRADCHECK([labels, eps, r](const std::vector<Tensor>& in) { return cross_entropy(in[0], labels, eps, r); },
                        {x});
  Tensor p = softmax(random_input({4, 3}, 8).detach(), -1).set_requires_grad();
  REQUIRE_GRADCHECK([](const std::vector<Tensor>& in) { return cross_entropy(in[0], in[1], 0.2); }, {x, p});
  Tensor extreme = tensor({50, -50, 0, -50, 50, 49, 0, 0, -50, 20, -20, 50}, {4, 3}, DType::f64).set_requires_grad();
  REQUIRE_GRADCHECK([labels](const std::vector<Tensor>& in) { return cross_entropy(in[0], labels, 0.1, Reduction::sum); },
                    {extreme});
}

TEST_CASE("cross_entropy is finite for logits ±1e4 (float32)", "[losses]") {
  Tensor x = tensor({1e4, -1e4, 0, -1e4, 1e4, 1e4}, {2, 3}).set_requires_grad();
  Tensor labels = index_tensor({1, 0});
  Tensor loss = cross_entropy(x, labels, 0.1, Reduction::none);
  REQUIRE(all_finite(loss));
  REQUIRE(loss.at({0}) == Approx(0.9 * 2e4 + 0.1 / 3 * (2e4 + 1e4)).epsilon(1e-6));
  backward(sum(loss));
  REQUIRE(all_finite(x.grad()));
}

TEST_CASE("nll of log_softmax is cross_entropy; nll matches PyTorch", "[losses]") {
  Tensor x = ce_logits().detach();
  Tensor labels = index_tensor({0, 3, 1});
  REQUIRE(nll(log_softmax(x, -1), labels).item() == Approx(0.3498024657245253).epsilon(1e-14));
  REQUIRE(nll(log_softmax(x, -1), labels, Reduction::sum).item() == Approx(1.0494073971735758).epsilon(1e-14));
  Tensor lp = log_softmax(random_input({5, 4}, 9).detach(), -1).set_requires_grad();
  Tensor l5 = index_tensor({3, 0, 0, 2, 1});
  REQUIRE_GRADCHECK([l5](const std::vector<Tensor>& in) { return nll(in[0], l5, Reduction::none); }, {lp});
  REQUIRE_GRADCHECK([l5](const std::vector<Tensor>& in) { return nll(log_softmax(in[0], -1), l5); }, {lp});
}

TEST_CASE("ignore_index: ignored positions add no loss or gradient; mean skips them (PyTorch)",
          "[losses]") {
  // PyTorch 1.13, float64: x = [[2,-1,.5],[.1,3,-2],[1,1,0],[.3,-.2,4]]
  //   F.cross_entropy(x, [2,-100,1,-100], label_smoothing=0.1)   (ignore_index -100 by default)
  //   F.nll_loss(F.log_softmax(x, -1), [2,5,1,5], ignore_index=5, reduction=...)
  const std::vector<double> xv = {2, -1, 0.5, 0.1, 3, -2, 1, 1, 0, 0.3, -0.2, 4};
  Tensor x = tensor(xv, {4, 3}, DType::f64).set_requires_grad();
  Tensor loss = cross_entropy(x, index_tensor({2, -100, 1, -100}), 0.1);
  REQUIRE(loss.item() == Approx(1.318319717).epsilon(1e-9));
  backward(loss);
  require_values(x.grad(), {0.3761318506, 0.002889619969, -0.3790214706, 0, 0, 0, 0.1944927325,
                            -0.2555072675, 0.06101453508, 0, 0, 0},
                 1e-9);
  Tensor y = tensor(xv, {4, 3}, DType::f64);
  Tensor labels = index_tensor({2, 5, 1, 5});
  require_values(nll(log_softmax(y), labels, Reduction::none, 5), {1.741311297, 0, 0.8619948041, 0},
                 1e-9);
  REQUIRE(nll(log_softmax(y), labels, Reduction::sum, 5).item() ==
          Approx(1.741311297 + 0.8619948041).epsilon(1e-9));
  REQUIRE(nll(log_softmax(y), labels, Reduction::mean, 5).item() == Approx(1.30165305).epsilon(1e-9));
  // [N, C, d] logits: F.cross_entropy(z, [[0,-100],[1,1]], label_smoothing=0.15)
  Tensor z = tensor({2, -1, 0.5, 0.1, 3, -2, 1, 1, 1, 0, 0, 5}, {2, 3, 2}, DType::f64);
  REQUIRE(cross_entropy(z, index_tensor({0, -100, 1, 1}, {2, 2}), 0.15).item() ==
          Approx(2.344426242).epsilon(1e-9));
  // every position ignored: mean is 0/0 = NaN, as in PyTorch; sum is 0
  REQUIRE(std::isnan(cross_entropy(y, index_tensor({-100, -100, -100, -100})).item()));
  REQUIRE(cross_entropy(y, index_tensor({-100, -100, -100, -100}), 0.0, Reduction::sum).item() == 0);
  // an ignored position cannot leak a NaN: its logits may be anything
  Tensor bad = tensor({1, 2, 3, std::nan(""), 0, 0}, {2, 3}, DType::f64);
  REQUIRE(cross_entropy(bad, index_tensor({0, -100})).item() ==
          Approx(cross_entropy(slice(bad, 0, 0, 1), index_tensor({0})).item()));
  Tensor w = random_input({4, 3}, 17, -2, 2);
  Tensor partly = index_tensor({2, -100, 0, 1});
  for (Reduction r : {Reduction::none, Reduction::sum, Reduction::mean})
    REQUIRE_GRADCHECK([partly, r](const std::vector<Tensor>& in) { return cross_entropy(in[0], partly, 0.1, r); },
                      {w});
  REQUIRE_GRADCHECK([](const std::vector<Tensor>& in) { return nll(in[0], index_tensor({7, 0, 7, 2}), Reduction::mean, 7); },
                    {w});
}

TEST_CASE("cross_entropy and nll check their labels", "[losses]") {
  require_error([] { cross_entropy(zeros({2, 3}), index_tensor({0, 3})); },
                {"cross_entropy", "label 3", "[0, 3)"});
  require_error([] { cross_entropy(zeros({2, 3}), index_tensor({0, 1, 2})); },
                {"cross_entropy", "[3]", "[2]"});
  require_error([] { cross_entropy(zeros({2, 3}), index_tensor({0, 1}), 1.5); },
                {"cross_entropy", "label_smoothing", "1.5"});
  require_error([] { cross_entropy(zeros({2, 3}), zeros({2, 4})); },
                {"cross_entropy", "[2, 3]", "[2, 4]"});
  require_error([] { nll(zeros({2, 3}), index_tensor({-1, 0})); },
                {"nll", "label -1", "[0, 3)", "ignore_index (-100)"});
  require_error([] { nll(zeros({2, 3}), zeros({2})); }, {"nll", "i64"});
}

// ---------------------------------------------------------------- mse

TEST_CASE("mse: values, reductions and gradcheck", "[losses]") {
  Tensor a = tensor({1, 2, 3, 4}, {2, 2}, DType::f64), b = tensor({0, 2, 5, 1}, {2, 2}, DType::f64);
  require_values(mse(a, b, Reduction::none), {1, 0, 4, 9});
  REQUIRE(mse(a, b).item() == 3.5);
  REQUIRE(mse(a, b, Reduction::sum).item() == 14);
  REQUIRE(mse(a, b, Reduction::batchmean).item() == 7);
  REQUIRE_GRADCHECK([](const std::vector<Tensor>& in) { return mse(in[0], in[1]); },
                    {random_input({3, 4}, 10), random_input({3, 4}, 11)});
  require_error([] { mse(zeros({2}), zeros({3})); }, {"mse", "input [2]", "target [3]"});
}

// ---------------------------------------------------------------- distillation

TEST_CASE("distillation: the document's numbers for teacher [3, 1, 0.5], student [2, 1.5, 0.5], T = 4",
          "[losses]") {
  Tensor teacher = tensor({3, 1, 0.5}, {1, 3}, DType::f64);
  for (DType dtype : {DType::f64, DType::f32}) {
    Tensor student = tensor({2, 1.5, 0.5}, {1, 3}, dtype).set_requires_grad();
    Tensor loss = distillation_loss(student, teacher.to(dtype), 4.0);
    // F.kl_div(F.log_softmax(s/T), F.softmax(t/T), reduction='batchmean') * T²
    REQUIRE(loss.item() == Approx(0.21609483549821107).epsilon(dtype == DType::f64 ? 1e-13 : 1e-5));
    backward(loss);
    require_values(student.grad(), {-0.3110451737997463, 0.2408967477861846, 0.07014842601356165},
                   dtype == DType::f64 ? 1e-13 : 1e-5);
  }
}

TEST_CASE("distillation with alpha adds alpha·cross_entropy; gradcheck", "[losses]") {
  Tensor s = random_input({4, 5}, 12, -3, 3), t = random_input({4, 5}, 13, -3, 3);
  Tensor labels = index_tensor({1, 4, 0, 2});
  double with_ce = distillation_loss(s.detach(), t.detach(), 3.0, 0.5, labels).item();
  double expected = distillation_loss(s.detach(), t.detach(), 3.0).item() +
                    0.5 * cross_entropy(s.detach(), labels).item();
  REQUIRE(with_ce == Approx(expected).epsilon(1e-14));
  REQUIRE_GRADCHECK([labels](const std::vector<Tensor>& in) { return distillation_loss(in[0], in[1], 3.0, 0.5, labels); },
                    {s, t});
  require_error([&] { distillation_loss(s, t, 2.0, 0.3); }, {"distillation_loss", "labels"});
  require_error([&] { distillation_loss(s, t, 0.0); }, {"distillation_loss", "temperature"});
}

TEST_CASE("distillation: T² keeps the student's gradient O(1) as T grows", "[losses]") {
  // For large T, T²·∂KL/∂s → ((s - t) - mean(s - t)) / (n·N): a fixed, non-zero limit. Without
  // the T² factor the gradient would shrink like 1/T.
  Tensor s = tensor({2, 1.5, 0.5, -1}, {1, 4}, DType::f64), t = tensor({3, 1, 0.5, 0}, {1, 4}, DType::f64);
  std::vector<double> diff = sub(s, t).to_vector();
  double mean_diff = (diff[0] + diff[1] + diff[2] + diff[3]) / 4;
  double previous_norm = 0;
  for (double T : {1.0, 4.0, 20.0, 100.0, 1000.0}) {
    Tensor student = s.clone().set_requires_grad();
    backward(distillation_loss(student, t, T));
    std::vector<double> grad = student.grad().to_vector();
    double norm = 0;
    for (double g : grad) norm += g * g;
    norm = std::sqrt(norm);
    INFO("T = " << T << ", |grad| = " << norm);
    REQUIRE(norm > 0.1);
    REQUIRE(norm < 1.0);
    if (T >= 100)
      for (int j = 0; j < 4; ++j) REQUIRE(grad[j] == Approx((diff[j] - mean_diff) / 4).margin(0.5 / T));
    if (T > 1) REQUIRE(norm == Approx(previous_norm).epsilon(0.35));  // no 1/T decay
    previous_norm = norm;
    Tensor bare = s.clone().set_requires_grad();  // the KL alone, without T²
    backward(kl_divergence_logits(t, bare, -1, T, Reduction::batchmean));
    REQUIRE(std::abs(bare.grad().at({0, 0})) == Approx(std::abs(grad[0]) / (T * T)).epsilon(1e-9));
  }
}

// ---------------------------------------------------------------- PPO

TEST_CASE("ppo_clip_loss matches PyTorch's clipped surrogate", "[losses]") {
  Tensor new_logp = tensor({0.0, 0.3, -0.3, 0.5, -0.5, 0.05}, DType::f64).set_requires_grad();
  Tensor old_logp = zeros({6}, DType::f64);
  Tensor advantages = tensor({1, 1, 1, -1, -1, 2}, DType::f64);
  Tensor loss = ppo_clip_loss(new_logp, old_logp, advantages, 0.2);
  REQUIRE(loss.item() == Approx(-0.432439857122273).epsilon(1e-14));
  backward(loss);
  require_values(new_logp.grad(), {-0.16666666666666666, 0.0, -0.12346970344695297,
                                   0.27478687845002137, 0.0, -0.350423698792008},
                 1e-14);
}

TEST_CASE("ppo_clip_loss: the gradient is exactly 0 where the clip blocks, and -r·A elsewhere",
          "[losses]") {
  const double eps = 0.2;
  // ratios 1.5 and 0.5 with A > 0 and A < 0: blocked when (A > 0, r > 1+ε) or (A < 0, r < 1-ε)
  Tensor new_logp = tensor({std::log(1.5), std::log(0.5), std::log(1.5), std::log(0.5)}, DType::f64)
                        .set_requires_grad();
  Tensor old_logp = zeros({4}, DType::f64).set_requires_grad();
  Tensor advantages = tensor({2, 2, -3, -3}, DType::f64);
  backward(ppo_clip_loss(new_logp, old_logp, advantages, eps, Reduction::sum));
  std::vector<double> g = new_logp.grad().to_vector();
  REQUIRE(g[0] == 0.0);              // A > 0, r > 1+ε: clipped, blocked
  REQUIRE(g[1] == Approx(-0.5 * 2));  // A > 0, r < 1-ε: the unclipped r·A is smaller
  REQUIRE(g[2] == Approx(1.5 * 3));   // A < 0, r > 1+ε: unclipped
  REQUIRE(g[3] == 0.0);              // A < 0, r < 1-ε: blocked
  require_values(old_logp.grad(), {0, 1, -4.5, 0}, 1e-12);
}

TEST_CASE("gradcheck: ppo_clip_loss in all three inputs, away from the kinks", "[losses]") {
  Tensor new_logp = tensor({0.05, 0.4, -0.4, 0.4, -0.4, -0.1, 0.1, 0.02}, DType::f64).set_requires_grad();
  Tensor old_logp = tensor({0.0, 0.1, 0.0, -0.1, 0.1, 0.0, 0.05, 0.0}, DType::f64).set_requires_grad();
  Tensor advantages = tensor({1.5, 0.7, -0.3, -2, 1, 0.5, -1, 3}, DType::f64).set_requires_grad();
  for (Reduction r : {Reduction::mean, Reduction::none})
    REQUIRE_GRADCHECK([r](const std::vector<Tensor>& in) { return ppo_clip_loss(in[0], in[1], in[2], 0.2, r); },
                      {new_logp, old_logp, advantages});
}

TEST_CASE("ppo_clip_loss stays finite for huge log-ratios (float32)", "[losses]") {
  // e^100 overflows float32; the clamp of the log-ratio at 20 keeps values and gradients finite
  Tensor new_logp = tensor({100, -100, 1000, -1000, 100, 30}).set_requires_grad();
  Tensor old_logp = zeros({6});
  Tensor advantages = tensor({1, 1, -1, -1, -1, -2});
  Tensor loss = ppo_clip_loss(new_logp, old_logp, advantages, 0.2, Reduction::none);
  REQUIRE(all_finite(loss));
  require_values(slice(loss, 0, 0, 4), {-1.2, -0.0, std::exp(20.0), 0.8}, 1e-3);
  backward(sum(loss));
  REQUIRE(all_finite(new_logp.grad()));
  REQUIRE(new_logp.grad().at({0}) == 0);  // blocked by the clip
  REQUIRE(new_logp.grad().at({1}) == Approx(0).margin(1e-30));  // A > 0, r = e^-100: -r·A ≈ 0
  require_error([] { ppo_clip_loss(zeros({2}), zeros({2}), zeros({3})); },
                {"ppo_clip_loss", "advantages [3]"});
  require_error([] { ppo_clip_loss(zeros({2}), zeros({2}), zeros({2}), 1.5); }, {"ppo_clip_loss", "1.5"});
}

// ---------------------------------------------------------------- extreme inputs

TEST_CASE("gradcheck at extreme inputs: distillation (logits ±50, T 0.05 and 100), nll, ppo, mse",
          "[losses]") {
  Tensor s = tensor({50, -50, 10, -10, 49, 0}, {2, 3}, DType::f64).set_requires_grad();
  Tensor t = tensor({-50, 50, 0, 20, -20, 50}, {2, 3}, DType::f64).set_requires_grad();
  for (double T : {0.05, 1.0, 100.0})
    REQUIRE_GRADCHECK([T](const std::vector<Tensor>& in) { return distillation_loss(in[0], in[1], T); }, {s, t});
  Tensor log_probs = tensor({-50, -1e-20, -25, -1, -49, -0.5}, {2, 3}, DType::f64).set_requires_grad();
  Tensor labels = index_tensor({0, 2});
  REQUIRE_GRADCHECK([labels](const std::vector<Tensor>& in) { return nll(in[0], labels); }, {log_probs});
  // log-ratios up to ±15 (r from 3e-7 to 3e6), advantages of both signs, away from the clip edges
  Tensor new_logp = tensor({15, -15, 12, -12, 0.01, -0.01}, DType::f64).set_requires_grad();
  Tensor old_logp = tensor({0, 0, -1, 1, 0, 0}, DType::f64).set_requires_grad();
  Tensor advantages = tensor({-2, 2, -0.5, 0.5, 100, -100}, DType::f64).set_requires_grad();
  REQUIRE_GRADCHECK([](const std::vector<Tensor>& in) { return ppo_clip_loss(in[0], in[1], in[2], 0.2, Reduction::none); },
                    {new_logp, old_logp, advantages});
  Tensor big = tensor({1e4, -1e4, 3e3}, DType::f64).set_requires_grad();
  Tensor other = tensor({-1e4, 1e4, 3e3 + 1e-3}, DType::f64).set_requires_grad();
  REQUIRE_GRADCHECK([](const std::vector<Tensor>& in) { return mse(in[0], in[1], Reduction::none); }, {big, other});
}

TEST_CASE("distillation stays finite for logits ±1e4 and T ∈ [0.05, 100] (float32)", "[losses]") {
  for (double T : {0.05, 1.0, 100.0}) {
    Tensor s = tensor({1e4, -1e4, 0, -1e4, 1e4, 1e4}, {2, 3}).set_requires_grad();
    Tensor t = tensor({-1e4, 1e4, 0, 1e4, -1e4, 5e3}, {2, 3});
    Tensor loss = distillation_loss(s, t, T, 0.5, index_tensor({0, 2}));
    REQUIRE(std::isfinite(loss.item()));
    backward(loss);
    REQUIRE(all_finite(s.grad()));
  }
}
