// tests/test_normalization.cpp — batch_norm and layer_norm: values against float64 formulas and
// PyTorch's numbers, the running statistics after a training step, eval mode using them,
// gradcheck and gradgradcheck in both modes, the BatchNorm / LayerNorm modules, train()/eval()
// switching dropout and batch norm together, and buffers round-tripping through state dicts
// and checkpoint files.
#include <cmath>
#include <cstring>

#include "file_helpers.h"
#include "helpers.h"

using namespace tg;
using tgtest::random_input;
using tgtest::require_error;
using tgtest::require_values;

using Inputs = std::vector<Tensor>;

namespace {

// Per channel c of x viewed as [N, C, S]: the mean and the biased variance.
struct ChannelStats {
  std::vector<double> mean, var;
};
ChannelStats channel_stats(const Tensor& x) {
  const int64_t n = x.size(0), c = x.size(1), s = x.numel() / (n * c);
  std::vector<double> v = x.to_vector();
  ChannelStats st{std::vector<double>(c, 0), std::vector<double>(c, 0)};
  for (int64_t ch = 0; ch < c; ++ch) {
    for (int64_t b = 0; b < n; ++b)
      for (int64_t k = 0; k < s; ++k) st.mean[ch] += v[(b * c + ch) * s + k];
    st.mean[ch] /= double(n * s);
    for (int64_t b = 0; b < n; ++b)
      for (int64_t k = 0; k < s; ++k) {
        double d = v[(b * c + ch) * s + k] - st.mean[ch];
        st.var[ch] += d * d;
      }
    st.var[ch] /= double(n * s);
  }
  return st;
}

std::vector<double> normalized(const Tensor& x, const std::vector<double>& mean,
                               const std::vector<double>& var, const std::vector<double>& w,
                               const std::vector<double>& b, double eps) {
  const int64_t n = x.size(0), c = x.size(1), s = x.numel() / (n * c);
  std::vector<double> v = x.to_vector(), y(v.size());
  for (int64_t bi = 0; bi < n; ++bi)
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t k = 0; k < s; ++k) {
        int64_t i = (bi * c + ch) * s + k;
        y[i] = (v[i] - mean[ch]) / std::sqrt(var[ch] + eps) * w[ch] + b[ch];
      }
  return y;
}

}  // namespace

// ---------------------------------------------------------------- batch_norm

TEST_CASE("batch_norm in training mode normalises with the batch's statistics and updates the "
          "running ones (unbiased variance, momentum)",
          "[norm]") {
  for (Shape shape : {Shape{4, 3, 5, 2}, Shape{6, 3}, Shape{2, 3, 7}}) {
    Tensor x = random_input(shape, 1, -2, 3).set_requires_grad(false);
    Tensor w = random_input({3}, 2), b = random_input({3}, 3);
    Tensor rm = tensor({0.5, -1, 2}, DType::f64), rv = tensor({1, 2, 0.5}, DType::f64);
    ChannelStats st = channel_stats(x);
    Tensor y = batch_norm(x, rm, rv, w, b, true, 0.2, 1e-3);
    INFO("shape " << shape);
    require_values(y, normalized(x, st.mean, st.var, w.to_vector(), b.to_vector(), 1e-3), 1e-12);
    const double n = double(x.numel() / 3);
    std::vector<double> want_mean, want_var;
    for (int c = 0; c < 3; ++c) {
      want_mean.push_back(0.8 * std::vector<double>{0.5, -1, 2}[c] + 0.2 * st.mean[c]);
      want_var.push_back(0.8 * std::vector<double>{1, 2, 0.5}[c] + 0.2 * st.var[c] * n / (n - 1));
    }
    require_values(rm, want_mean, 1e-12);
    require_values(rv, want_var, 1e-12);
    // eval mode normalises with the running statistics and leaves them alone
    Tensor z = batch_norm(x, rm, rv, w, b, false, 0.2, 1e-3);
    require_values(z, normalized(x, want_mean, want_var, w.to_vector(), b.to_vector(), 1e-3),
                   1e-12);
    require_values(rm, want_mean, 1e-12);
  }
}

TEST_CASE("batch_norm matches PyTorch's numbers", "[norm]") {
  // torch.nn.BatchNorm1d(2) (momentum 0.1, eps 1e-5) on x = [[1, 2], [3, 5], [4, 11]] in
  // training mode, then its running statistics: recorded from PyTorch 1.13.
  nn::BatchNorm1d bn(2);
  Tensor y = bn(tensor({1, 2, 3, 5, 4, 11}, {3, 2}));
  require_values(y, {-1.3363, -1.0690, 0.2673, -0.2673, 1.0690, 1.3363}, 1e-4);
  require_values(bn.running_mean, {0.2667, 0.6000}, 1e-4);
  require_values(bn.running_var, {1.1333, 3.0000}, 1e-4);
}

TEST_CASE("batch_norm passes gradcheck and gradgradcheck in training and eval mode", "[norm]") {
  Tensor x = random_input({3, 2, 2, 3}, 5);
  Tensor w = random_input({2}, 6, 0.5, 2), b = random_input({2}, 7);
  auto train = [](const Inputs& in) {
    return batch_norm(in[0], Tensor(), Tensor(), in[1], in[2], true);
  };
  REQUIRE_GRADCHECK(train, {x, w, b});
  REQUIRE_GRADGRADCHECK(train, {x, w, b});
  Tensor rm = tensor({0.1, -0.2}, DType::f64), rv = tensor({0.7, 1.3}, DType::f64);
  auto eval = [rm, rv](const Inputs& in) {
    return batch_norm(in[0], rm, rv, in[1], in[2], false);
  };
  REQUIRE_GRADCHECK(eval, {x, w, b});
  REQUIRE_GRADGRADCHECK(eval, {x, w, b});
  // [N, C] input, no affine parameters, a nonlinearity after it
  auto plain = [](const Inputs& in) {
    return tanh(batch_norm(in[0], Tensor(), Tensor(), Tensor(), Tensor(), true));
  };
  REQUIRE_GRADCHECK(plain, {random_input({5, 3}, 8)});
  REQUIRE_GRADGRADCHECK(plain, {random_input({5, 3}, 9)});
}

TEST_CASE("batch_norm rejects bad shapes with the op's name", "[norm]") {
  Tensor x = zeros({4, 3, 2, 2});
  require_error([&] { batch_norm(zeros({4}), Tensor(), Tensor(), Tensor(), Tensor(), true); },
                {"batch_norm", "[N, C]"});
  require_error([&] { batch_norm(x, Tensor(), Tensor(), zeros({4}), Tensor(), true); },
                {"batch_norm", "weight"});
  require_error([&] { batch_norm(x, zeros({3}), Tensor(), Tensor(), Tensor(), true); },
                {"batch_norm", "running_var"});
  require_error([&] { batch_norm(x, Tensor(), Tensor(), Tensor(), Tensor(), false); },
                {"batch_norm", "eval mode"});
  require_error([&] { batch_norm(zeros({1, 3}), Tensor(), Tensor(), Tensor(), Tensor(), true); },
                {"batch_norm", "more than one value"});
  nn::BatchNorm2d bn(3);
  require_error([&] { bn(zeros({4, 3})); }, {"BatchNorm2d", "[N, 3, H, W]"});
}

// ---------------------------------------------------------------- the fused training kernel

namespace {

// Training-mode batch_norm written as the composition of recorded ops it was before the fused
// kernel (docs/math.md): the reference for the kernel's values and gradients.
Tensor composed_batch_norm(const Tensor& x, const Tensor& w, const Tensor& b, double eps) {
  const int64_t n = x.size(0), c = x.size(1), rest = x.numel() / (n * c);
  Tensor x3 = reshape(x, {n, c, rest});
  auto channel_mean = [](const Tensor& t) { return mean(mean(t, 2, true), 0, true); };
  Tensor centered = x3 - channel_mean(x3);
  Tensor y = centered * pow(channel_mean(square(centered)) + eps, -0.5);
  if (w.defined()) y = y * reshape(w, {1, c, 1});
  if (b.defined()) y = y + reshape(b, {1, c, 1});
  return reshape(y, x.shape());
}

// A leaf of `dtype` holding t's values.
Tensor leaf(const Tensor& t, DType dtype) { return t.detach().to(dtype).set_requires_grad(); }

// The inputs of a batch_norm call: x, then weight and bias where `affine` has them.
struct Affine {
  bool weight, bias;
};
const Affine kAffines[] = {{true, true}, {true, false}, {false, true}, {false, false}};

}  // namespace

TEST_CASE("the fused batch_norm equals the composition of ops element by element: output, "
          "running statistics and every gradient, in f32 and f64",
          "[norm]") {
  unsigned seed = 40;
  for (Shape shape : {Shape{7, 3}, Shape{4, 3, 5, 2}, Shape{16, 8, 9, 7}, Shape{3, 4, 37}})
    for (DType dtype : {DType::f64, DType::f32})
      for (Affine affine : kAffines) {
        const int64_t c = shape[1];
        Tensor x = leaf(random_input(shape, ++seed, -2, 3), dtype);
        Tensor w = affine.weight ? leaf(random_input({c}, ++seed, 0.5, 2), dtype) : Tensor();
        Tensor b = affine.bias ? leaf(random_input({c}, ++seed), dtype) : Tensor();
        Tensor grad_y = random_input(shape, ++seed).detach().to(dtype);
        Tensor rm = zeros({c}, dtype), rv = ones({c}, dtype);
        Tensor y = batch_norm(x, rm, rv, w, b, true, 0.1, 1e-3);
        std::vector<Tensor> inputs = {x};
        if (w.defined()) inputs.push_back(w);
        if (b.defined()) inputs.push_back(b);
        std::vector<Tensor> grads = grad({y}, inputs, {grad_y});
        // The reference in f64 from the same (rounded) inputs.
        std::vector<Tensor> inputs64;
        for (const Tensor& t : inputs) inputs64.push_back(leaf(t, DType::f64));
        Tensor x64 = inputs64[0];
        Tensor w64 = w.defined() ? inputs64[1] : Tensor();
        Tensor b64 = b.defined() ? inputs64.back() : Tensor();
        Tensor want = composed_batch_norm(x64, w64, b64, 1e-3);
        std::vector<Tensor> want_grads = grad({want}, inputs64, {grad_y.to(DType::f64)});
        const double tolerance = dtype == DType::f64 ? 1e-12 : 2e-5;
        INFO("shape " << shape << " " << dtype_name(dtype) << " weight " << affine.weight
                      << " bias " << affine.bias);
        require_values(y, want.to_vector(), tolerance);
        for (size_t k = 0; k < grads.size(); ++k) {
          INFO("gradient of input " << k);
          require_values(grads[k], want_grads[k].to_vector(), tolerance);
        }
        // running statistics: momentum 0.1 from 0 and 1, the unbiased variance
        ChannelStats st = channel_stats(x64);
        const double m = double(x.numel() / c);
        std::vector<double> want_mean, want_var;
        for (int64_t k = 0; k < c; ++k) {
          want_mean.push_back(0.1 * st.mean[k]);
          want_var.push_back(0.9 + 0.1 * st.var[k] * m / (m - 1));
        }
        require_values(rm, want_mean, tolerance);
        require_values(rv, want_var, tolerance);
      }
}

TEST_CASE("the fused batch_norm keeps its digits when the mean is large against the spread",
          "[norm]") {
  // f32 values 1000 + N(0, 1): E[x²] - mean² in f32 would lose every digit of the variance.
  Generator g(4);
  Tensor x = add(normal({64, 2, 6, 6}, 0, 1, g), 1000.0);
  Tensor y = batch_norm(x, Tensor(), Tensor(), Tensor(), Tensor(), true);
  ChannelStats st = channel_stats(x);
  std::vector<double> one(2, 1.0), zero(2, 0.0);
  require_values(y, normalized(x, st.mean, st.var, one, zero, 1e-5), 1e-4);
}

TEST_CASE("the fused batch_norm passes gradcheck and gradgradcheck on [N, C] and [N, C, H, W], "
          "with and without weight and bias",
          "[norm]") {
  unsigned seed = 70;
  for (Shape shape : {Shape{6, 3}, Shape{3, 2, 3, 2}})
    for (Affine affine : kAffines) {
      INFO("shape " << shape << " weight " << affine.weight << " bias " << affine.bias);
      const int64_t c = shape[1];
      Inputs in = {random_input(shape, ++seed)};
      if (affine.weight) in.push_back(random_input({c}, ++seed, 0.5, 2));
      if (affine.bias) in.push_back(random_input({c}, ++seed));
      auto f = [affine](const Inputs& v) {
        Tensor w = affine.weight ? v[1] : Tensor();
        Tensor b = affine.bias ? v.back() : Tensor();
        Tensor rm = zeros({v[0].size(1)}, DType::f64), rv = ones({v[0].size(1)}, DType::f64);
        return sin(batch_norm(v[0], rm, rv, w, b, true));  // a nonlinearity after it
      };
      REQUIRE_GRADCHECK(f, in);
      REQUIRE_GRADGRADCHECK(f, in);
    }
}

TEST_CASE("the fused batch_norm's kernel backward equals its recorded backward (create_graph)",
          "[norm]") {
  Tensor x = random_input({5, 3, 4, 2}, 81), w = random_input({3}, 82, 0.5, 2);
  Tensor b = random_input({3}, 83), grad_y = random_input({5, 3, 4, 2}, 84).detach();
  auto gradients = [&](bool create_graph) {
    Tensor y = batch_norm(x, Tensor(), Tensor(), w, b, true);
    return grad({y}, {x, w, b}, {grad_y}, create_graph);
  };
  std::vector<Tensor> kernel = gradients(false), recorded = gradients(true);
  REQUIRE(recorded[0].requires_grad());
  for (size_t k = 0; k < 3; ++k) {
    INFO("input " << k);
    require_values(kernel[k], recorded[k].to_vector(), 1e-12);
  }
}

TEST_CASE("the fused batch_norm gives the same bits on 1, 2, 3 and 8 threads", "[norm]") {
  struct ThreadsGuard {  // restores the thread count, also when an assertion fails
    int threads = num_threads();
    ~ThreadsGuard() { set_num_threads(threads); }
  } guard;
  Generator g(12);
  // The CNN example's first batch norm at batch 16: a task per channel.
  Tensor x0 = relu(normal({16, 8, 28, 28}, 0.3, 2, g)), grad_y = normal({16, 8, 28, 28}, 0, 1, g);
  Tensor w0 = uniform({8}, 0.5, 2, g), b0 = uniform({8}, -1, 1, g);
  auto run = [&] {
    Tensor x = x0.clone().set_requires_grad(), w = w0.clone().set_requires_grad();
    Tensor b = b0.clone().set_requires_grad();
    Tensor rm = zeros({8}), rv = ones({8});
    Tensor y = batch_norm(x, rm, rv, w, b, true);
    std::vector<Tensor> out = grad({y}, {x, w, b}, {grad_y});
    out.insert(out.end(), {y.detach(), rm, rv});
    std::vector<std::vector<double>> values;
    for (const Tensor& t : out) values.push_back(t.to_vector());
    return values;
  };
  set_num_threads(1);
  const auto one = run();
  for (int threads : {2, 3, 8}) {
    set_num_threads(threads);
    const auto many = run();
    for (size_t k = 0; k < one.size(); ++k) {
      INFO("result " << k << " on " << threads << " threads");
      REQUIRE(std::memcmp(many[k].data(), one[k].data(), one[k].size() * sizeof(double)) == 0);
    }
  }
}

// ---------------------------------------------------------------- modules, train/eval, buffers

TEST_CASE("BatchNorm2d keeps its running statistics as buffers in the state dict, and they "
          "round-trip through a checkpoint file",
          "[norm]") {
  nn::BatchNorm2d bn(3);
  StateDict state = bn.state_dict();
  std::vector<std::string> names;
  for (const auto& e : state) names.push_back(e.first);
  REQUIRE(names == std::vector<std::string>{"weight", "bias", "running_mean", "running_var",
                                            "num_batches_tracked"});
  REQUIRE(bn.parameters().size() == 2);  // buffers are not trained
  bn(random_input({4, 3, 2, 2}, 1, 0, 4).to(DType::f32));
  std::vector<double> mean = bn.running_mean.to_vector(), var = bn.running_var.to_vector();
  REQUIRE(mean[0] != 0.0);

  tgtest::TempDir dir;
  write_state_dict(dir.file("bn.tgc"), bn.state_dict());
  nn::BatchNorm2d fresh(3);
  fresh.load_state_dict(read_state_dict(dir.file("bn.tgc")));
  require_values(fresh.running_mean, mean, 0);
  require_values(fresh.running_var, var, 0);
  // and through a training checkpoint
  nn::Sequential net({std::make_shared<nn::BatchNorm2d>(3)});
  net.load_state_dict([&] {
    StateDict s;
    for (const auto& e : bn.state_dict()) s.add("0." + e.first, e.second);
    return s;
  }());
  TrainingState saved;
  saved.model = &net;
  save_checkpoint(dir.file("run.tgc"), saved);
  nn::Sequential other({std::make_shared<nn::BatchNorm2d>(3)});
  TrainingState restored;
  restored.model = &other;
  load_checkpoint(dir.file("run.tgc"), restored);
  require_values(other.state_dict().find("0.running_var")->detach(), var, 0);
}

TEST_CASE("BatchNorm's running statistics after steps: momentum 0.1, and std::nullopt for the "
          "cumulative average; num_batches_tracked counts training batches",
          "[norm]") {
  // Three training batches, then the running statistics by hand in float64 from each batch's
  // mean and unbiased variance: with momentum m, r ← (1 - m)·r + m·s; with std::nullopt the
  // k-th batch weighs 1/k, so after K batches r is the plain average of the K batch statistics.
  std::vector<Tensor> batches;
  for (int64_t k = 0; k < 3; ++k)
    batches.push_back(
        random_input({4 + k, 3, 2}, unsigned(40 + k), -1.0 - double(k), 2.0 + 3.0 * double(k))
            .detach());
  for (std::optional<double> momentum : {std::optional<double>(0.1), std::optional<double>()}) {
    INFO("momentum " << (momentum ? std::to_string(*momentum) : "nullopt"));
    nn::BatchNorm1d bn(3, 1e-5, momentum, true, true, DType::f64);
    REQUIRE(bn.num_batches_tracked.dtype() == DType::i64);
    REQUIRE(bn.num_batches_tracked.shape() == Shape{});
    REQUIRE(bn.num_batches_tracked.item() == 0);
    std::vector<double> mean(3, 0.0), var(3, 1.0);
    for (size_t k = 0; k < batches.size(); ++k) {
      bn(batches[k]);
      ChannelStats st = channel_stats(batches[k]);
      const double n = double(batches[k].numel() / 3);
      const double weight = momentum ? *momentum : 1.0 / double(k + 1);
      for (int c = 0; c < 3; ++c) {
        mean[c] = (1 - weight) * mean[c] + weight * st.mean[c];
        var[c] = (1 - weight) * var[c] + weight * st.var[c] * n / (n - 1);
      }
      REQUIRE(bn.num_batches_tracked.item() == double(k + 1));
      require_values(bn.running_mean, mean, 1e-12);
      require_values(bn.running_var, var, 1e-12);
    }
    if (!momentum) {  // the cumulative average is the plain mean of the batches' statistics
      double average = 0;
      for (const Tensor& b : batches) average += channel_stats(b).mean[0] / 3;
      REQUIRE(bn.running_mean.to_vector()[0] == Approx(average).epsilon(1e-12));
    }
    // eval mode, and a rejected batch, count nothing
    bn.eval();
    bn(batches[0]);
    bn.train();
    require_error([&] { bn(zeros({1, 3}, DType::f64)); }, {"batch_norm", "more than one value"});
    REQUIRE(bn.num_batches_tracked.item() == 3);
    require_values(bn.running_mean, mean, 1e-12);
  }
  // Without running statistics there is nothing to count.
  nn::BatchNorm2d untracked(2, 1e-5, std::nullopt, true, false);
  REQUIRE_FALSE(untracked.num_batches_tracked.defined());
  untracked(random_input({2, 2, 3, 3}, 50).to(DType::f32));
  require_error([] { nn::BatchNorm1d(3, 1e-5, 1.5); }, {"BatchNorm", "momentum", "[0, 1]"});
}

TEST_CASE("num_batches_tracked round-trips through state dicts and checkpoints, and a resumed "
          "cumulative average goes on where it stopped",
          "[norm]") {
  Tensor x1 = random_input({5, 2, 3}, 60).detach(), x2 = random_input({5, 2, 3}, 61, 0, 3).detach();
  Tensor x3 = random_input({6, 2, 3}, 62, -3, 1).detach();
  nn::BatchNorm1d bn(2, 1e-5, std::nullopt, true, true, DType::f64);
  bn(x1);
  bn(x2);
  tgtest::TempDir dir;
  write_state_dict(dir.file("bn.tgc"), bn.state_dict());
  nn::BatchNorm1d resumed(2, 1e-5, std::nullopt, true, true, DType::f64);
  resumed(x3);  // a count of its own, which loading replaces
  resumed.load_state_dict(read_state_dict(dir.file("bn.tgc")));
  REQUIRE(resumed.num_batches_tracked.item() == 2);
  // The third batch weighs 1/3 in both.
  bn(x3);
  resumed(x3);
  REQUIRE(resumed.num_batches_tracked.item() == 3);
  require_values(resumed.running_mean, bn.running_mean.to_vector(), 0);
  require_values(resumed.running_var, bn.running_var.to_vector(), 0);
  // Through a training checkpoint, in a Sequential.
  nn::Sequential net({std::make_shared<nn::BatchNorm1d>(2, 1e-5, std::nullopt, true, true,
                                                        DType::f64)});
  net(x1);
  TrainingState saved;
  saved.model = &net;
  save_checkpoint(dir.file("run.tgc"), saved);
  nn::Sequential other({std::make_shared<nn::BatchNorm1d>(2, 1e-5, std::nullopt, true, true,
                                                          DType::f64)});
  TrainingState restored;
  restored.model = &other;
  load_checkpoint(dir.file("run.tgc"), restored);
  REQUIRE(other.state_dict().find("0.num_batches_tracked")->item() == 1);
}

TEST_CASE("a state dict or checkpoint without num_batches_tracked loads, with the count 0",
          "[norm]") {
  // tapegrad's checkpoints before the buffer existed, and PyTorch's before it did, lack it.
  nn::BatchNorm2d bn(3);
  bn(random_input({4, 3, 2, 2}, 70, 0, 4).to(DType::f32));
  StateDict old_format;
  for (const auto& e : bn.state_dict())
    if (e.first != "num_batches_tracked") old_format.add(e.first, e.second);
  REQUIRE(old_format.size() == 4);
  nn::BatchNorm2d fresh(3);
  fresh(random_input({4, 3, 2, 2}, 71).to(DType::f32));
  fresh(random_input({4, 3, 2, 2}, 72).to(DType::f32));
  REQUIRE(fresh.num_batches_tracked.item() == 2);
  fresh.load_state_dict(old_format);
  REQUIRE(fresh.num_batches_tracked.item() == 0);
  require_values(fresh.running_mean, bn.running_mean.to_vector(), 0);
  // The count starts again from the loaded 0: the next batch is number 1.
  fresh(random_input({4, 3, 2, 2}, 73).to(DType::f32));
  REQUIRE(fresh.num_batches_tracked.item() == 1);
  // A checkpoint file in the old format, as a run before the buffer wrote it.
  tgtest::TempDir dir;
  nn::Sequential net({std::make_shared<nn::BatchNorm2d>(3)});
  TrainingState saved;
  saved.model = &net;
  StateDict old_checkpoint;
  for (const auto& e : saved.state_dict())
    if (e.first != "model.0.num_batches_tracked") old_checkpoint.add(e.first, e.second);
  write_state_dict(dir.file("old.tgc"), old_checkpoint);
  nn::Sequential other({std::make_shared<nn::BatchNorm2d>(3)});
  other(random_input({4, 3, 2, 2}, 74).to(DType::f32));
  TrainingState restored;
  restored.model = &other;
  load_checkpoint(dir.file("old.tgc"), restored);
  REQUIRE(other.state_dict().find("0.num_batches_tracked")->item() == 0);
  // Present, it must still have the right dtype and shape; other entries stay required.
  StateDict wrong = old_format;
  wrong.add("num_batches_tracked", zeros({}, DType::f32));
  require_error([&] { fresh.load_state_dict(wrong); }, {"load_state_dict", "num_batches_tracked"});
  StateDict no_mean;
  for (const auto& e : bn.state_dict())
    if (e.first != "running_mean") no_mean.add(e.first, e.second);
  require_error([&] { fresh.load_state_dict(no_mean); }, {"load_state_dict", "running_mean"});
}

TEST_CASE("train() and eval() switch batch norm and dropout together", "[norm]") {
  Generator g(5);
  auto bn = std::make_shared<nn::BatchNorm1d>(4);
  auto drop = std::make_shared<nn::Dropout>(0.5, g);
  nn::Sequential net({bn, drop});
  Tensor x = random_input({8, 4}, 3).to(DType::f32);
  net.train();
  Tensor y_train = net(x);
  std::vector<double> after_one = bn->running_mean.to_vector();
  net.eval();
  REQUIRE_FALSE(bn->is_training());
  REQUIRE_FALSE(drop->is_training());
  Tensor y1 = net(x), y2 = net(x);
  require_values(y1, y2.to_vector(), 0);                    // no dropout, no batch statistics
  require_values(bn->running_mean, after_one, 0);           // eval does not update them
  ChannelStats st{bn->running_mean.to_vector(), bn->running_var.to_vector()};
  require_values(y1, normalized(x, st.mean, st.var, {1, 1, 1, 1}, {0, 0, 0, 0}, 1e-5), 1e-5);
  // without running statistics, eval mode still uses the batch's (PyTorch's rule)
  nn::BatchNorm1d untracked(4, 1e-5, 0.1, true, false);
  untracked.eval();
  ChannelStats batch = channel_stats(x);
  require_values(untracked(x), normalized(x, batch.mean, batch.var, {1, 1, 1, 1}, {0, 0, 0, 0}, 1e-5),
                 1e-5);
  REQUIRE(untracked.state_dict().size() == 2);
}

TEST_CASE("a step of a conv-BN network on the CPU moves the running statistics and the loss",
          "[norm]") {
  Generator g(9);
  nn::Sequential net({std::make_shared<nn::Conv2d>(1, 4, 3, g, 1, 1),
                      std::make_shared<nn::BatchNorm2d>(4), std::make_shared<nn::ActivationLayer>(nn::Activation::relu),
                      std::make_shared<nn::MaxPool2d>(2), std::make_shared<nn::Flatten>(),
                      std::make_shared<nn::Linear>(4 * 4 * 4, 3, g)});
  Tensor x = uniform({6, 1, 8, 8}, 0, 1, g);
  Tensor labels = index_tensor({0, 1, 2, 0, 1, 2});
  optim::SgdOptions options;
  options.lr = 0.1;
  optim::SGD sgd(net.parameters(), options);
  double first = 0, last = 0;
  for (int step = 0; step < 20; ++step) {
    Tensor loss = cross_entropy(net(x), labels);
    if (step == 0) first = loss.item();
    last = loss.item();
    sgd.zero_grad();
    backward(loss);
    sgd.step();
  }
  REQUIRE(last < first * 0.5);
  auto* bn = dynamic_cast<nn::BatchNorm2d*>(net.children()[1].second.get());
  REQUIRE(bn != nullptr);
  for (double v : bn->running_mean.to_vector()) REQUIRE(v != 0.0);
}

// ---------------------------------------------------------------- layer_norm

TEST_CASE("layer_norm equals the formula and PyTorch's numbers", "[norm]") {
  Tensor x = random_input({3, 2, 4}, 4, -3, 3);
  Tensor w = random_input({2, 4}, 5), b = random_input({2, 4}, 6);
  Tensor y = layer_norm(x, {2, 4}, w, b, 1e-4);
  std::vector<double> xv = x.to_vector(), wv = w.to_vector(), bv = b.to_vector(), want;
  for (int r = 0; r < 3; ++r) {
    double m = 0, v = 0;
    for (int k = 0; k < 8; ++k) m += xv[r * 8 + k] / 8;
    for (int k = 0; k < 8; ++k) v += (xv[r * 8 + k] - m) * (xv[r * 8 + k] - m) / 8;
    for (int k = 0; k < 8; ++k) want.push_back((xv[r * 8 + k] - m) / std::sqrt(v + 1e-4) * wv[k] + bv[k]);
  }
  require_values(y, want, 1e-12);
  // torch.nn.functional.layer_norm(tensor([[1., 2., 4.], [0., 0., 3.]]), (3,)): PyTorch 1.13
  require_values(layer_norm(tensor({1, 2, 4, 0, 0, 3}, {2, 3}), {3}),
                 {-1.0690, -0.2673, 1.3363, -0.7071, -0.7071, 1.4142}, 1e-4);
  nn::LayerNorm ln({4});
  REQUIRE(ln.state_dict().size() == 2);
  require_error([&] { layer_norm(x, {3}); }, {"layer_norm", "normalized_shape"});
}

TEST_CASE("layer_norm passes gradcheck and gradgradcheck", "[norm]") {
  auto f = [](const Inputs& in) { return layer_norm(in[0], {3}, in[1], in[2]); };
  Inputs in = {random_input({2, 2, 3}, 1), random_input({3}, 2), random_input({3}, 3)};
  REQUIRE_GRADCHECK(f, in);
  REQUIRE_GRADGRADCHECK(f, in);
  auto plain = [](const Inputs& i) { return layer_norm(i[0], {2, 3}); };
  REQUIRE_GRADCHECK(plain, {random_input({2, 2, 3}, 4)});
  REQUIRE_GRADGRADCHECK(plain, {random_input({2, 2, 3}, 5)});
}
