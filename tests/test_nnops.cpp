// tests/test_nnops.cpp — the ops of issue 18's second half: the activations (GELU exact and tanh,
// SiLU, leaky ReLU, softplus, ELU), sin/cos, var/std, squeeze/unsqueeze/permute/stack/expand,
// embedding, and comparisons on i64. Values are PyTorch's (torch 2, float64, recorded below) or
// float64 formulas; every gradient is gradcheck'd (second derivatives: test_higher_order.cpp).
#include <cmath>
#include <sstream>

#include "helpers.h"

using namespace tg;
using tgtest::random_input;
using tgtest::require_error;
using tgtest::require_values;

using Inputs = std::vector<Tensor>;

namespace {

// The inputs the PyTorch numbers below were computed at.
const std::vector<double> kPoints = {-3.0, -1.0, -0.25, 0.0, 0.5, 2.0, 25.0};

// y = f(x) and dΣy/dx at kPoints, in f64, against the expected values.
void require_activation(const std::function<Tensor(const Tensor&)>& f,
                        const std::vector<double>& value, const std::vector<double>& slope) {
  Tensor x = tensor(kPoints, DType::f64).set_requires_grad();
  Tensor y = f(x);
  require_values(y, value, 1e-12);
  backward(sum(y));
  require_values(x.grad(), slope, 1e-12);
}

}  // namespace

// ---------------------------------------------------------------- activations

TEST_CASE("activations and their gradients match PyTorch's numbers", "[nnops]") {
  // /usr/bin/python3 -c 'import torch, torch.nn.functional as F; x = torch.tensor([-3., -1.,
  //   -.25, 0., .5, 2., 25.], dtype=torch.float64, requires_grad=True); y = F.gelu(x); ...'
  // (y, then torch.autograd.grad(y.sum(), x)), printed with 15 significant digits.
  require_activation([](const Tensor& x) { return gelu(x); },
                     {-0.00404969409489031, -0.158655253931457, -0.100323418579269, 0.0,
                      0.345731230637007, 1.95449973610364, 25.0},
                     {-0.0119456472041839, -0.0833154705876863, 0.304626645116364, 0.5,
                      0.867495124656163, 1.0852318010782, 1.0});
  require_activation([](const Tensor& x) { return gelu(x, GeluApproximation::tanh); },
                     {-0.00363739208177299, -0.158808009391723, -0.100324649298315, 0.0,
                      0.345714009825144, 1.95459769408777, 25.0},
                     {-0.0115841666309696, -0.0829640838457825, 0.30464590484894, 0.5,
                      0.867369903534642, 1.08609925662362, 1.0});
  require_activation([](const Tensor& x) { return silu(x); },
                     {-0.1422776195327, -0.268941421369995, -0.10945587477855, 0.0,
                      0.311229665600927, 1.76159415595576, 24.9999999996528},
                     {-0.0881041060151696, 0.0723294881285133, 0.376289978429802, 0.5,
                      0.739961187302652, 1.0907842487849, 1.00000000033331});
  // The slope at 0 is the negative slope, as in PyTorch.
  require_activation([](const Tensor& x) { return leaky_relu(x, 0.1); },
                     {-0.3, -0.1, -0.025, 0.0, 0.5, 2.0, 25.0},
                     {0.1, 0.1, 0.1, 0.1, 1.0, 1.0, 1.0});
  // beta 2, threshold 5: 25 lies in the linear regime (2·25 > 5), 2 does not (2·2 < 5).
  require_activation([](const Tensor& x) { return softplus(x, 2.0, 5.0); },
                     {0.00123784256886522, 0.0634640055214862, 0.237038492090053,
                      0.346573590279973, 0.656630843759111, 2.0090749639589, 25.0},
                     {0.00247262315663477, 0.119202922022118, 0.377540668798145, 0.5,
                      0.731058578630005, 0.982013790037908, 1.0});
  // The slope at 0 is α·e^0 = α, as in PyTorch.
  require_activation([](const Tensor& x) { return elu(x, 0.7); },
                     {-0.665149052142495, -0.44248439117999, -0.154839451850017, 0.0, 0.5, 2.0,
                      25.0},
                     {0.0348509478575048, 0.25751560882001, 0.545160548149983, 0.7, 1.0, 1.0,
                      1.0});
  require_activation([](const Tensor& x) { return sin(x); },
                     {-0.141120008059867, -0.841470984807897, -0.247403959254523, 0.0,
                      0.479425538604203, 0.909297426825682, -0.132351750097773},
                     {-0.989992496600445, 0.54030230586814, 0.968912421710645, 1.0,
                      0.877582561890373, -0.416146836547142, 0.991202811863474});
  require_activation([](const Tensor& x) { return cos(x); },
                     {-0.989992496600445, 0.54030230586814, 0.968912421710645, 1.0,
                      0.877582561890373, -0.416146836547142, 0.991202811863474},
                     {0.141120008059867, 0.841470984807897, 0.247403959254523, -0.0,
                      -0.479425538604203, -0.909297426825682, 0.132351750097773});
}

TEST_CASE("activation defaults are PyTorch's", "[nnops]") {
  Tensor x = tensor({-2.0, 30.0}, DType::f64);
  // leaky_relu: slope 0.01; softplus: beta 1, threshold 20 (30 is returned as is); elu: alpha 1.
  require_values(leaky_relu(x), {-0.02, 30.0}, 1e-15);
  require_values(softplus(x), {std::log1p(std::exp(-2.0)), 30.0}, 1e-15);
  require_values(elu(x), {std::expm1(-2.0), 30.0}, 1e-15);
}

TEST_CASE("activations stay finite at extreme inputs and propagate NaN", "[nnops]") {
  for (DType dtype : {DType::f32, DType::f64}) {
    Tensor x = tensor({-1e4, -100, 100, 1e4}, dtype).set_requires_grad();
    std::vector<std::function<Tensor(const Tensor&)>> fs = {
        [](const Tensor& t) { return gelu(t); },
        [](const Tensor& t) { return gelu(t, GeluApproximation::tanh); },
        [](const Tensor& t) { return silu(t); },
        [](const Tensor& t) { return softplus(t); },
        [](const Tensor& t) { return elu(t); },
        [](const Tensor& t) { return leaky_relu(t); }};
    for (auto& f : fs) {
      Tensor y = f(x);
      backward(sum(y));
      INFO("dtype " << dtype << " y " << y << " grad " << x.grad());
      REQUIRE(tgtest::all_finite(y));
      REQUIRE(tgtest::all_finite(x.grad()));
      x.zero_grad();
    }
    Tensor nan = tensor({std::nan("")}, dtype);
    for (auto& f : fs) REQUIRE(std::isnan(f(nan).item()));
  }
  // softplus's linear regime: log1p(e^x) would overflow in f32 at x = 100; the threshold avoids it.
  REQUIRE(softplus(tensor({100.0})).item() == 100.0f);
}

TEST_CASE("float32 activations agree with the float64 ones", "[nnops]") {
  Tensor x = random_input({64}, 3, -6, 6).detach();
  std::vector<std::function<Tensor(const Tensor&)>> fs = {
      [](const Tensor& t) { return gelu(t); },
      [](const Tensor& t) { return gelu(t, GeluApproximation::tanh); },
      [](const Tensor& t) { return silu(t); },
      [](const Tensor& t) { return softplus(t, 1.5, 4.0); },
      [](const Tensor& t) { return elu(t, 1.3); },
      [](const Tensor& t) { return leaky_relu(t, 0.2); },
      [](const Tensor& t) { return sin(t); },
      [](const Tensor& t) { return cos(t); }};
  for (auto& f : fs) {
    std::vector<double> expected = f(x).to_vector();
    require_values(f(x.to(DType::f32)), expected, 1e-5);
  }
}

TEST_CASE("gradcheck: activations, sin and cos", "[nnops]") {
  // Away from the kinks of leaky ReLU and ELU at 0 (finite differences straddle them).
  Tensor x = random_input({3, 4}, 11, -3, 3);
  std::vector<std::function<Tensor(const Tensor&)>> fs = {
      [](const Tensor& t) { return gelu(t); },
      [](const Tensor& t) { return gelu(t, GeluApproximation::tanh); },
      [](const Tensor& t) { return silu(t); },
      [](const Tensor& t) { return leaky_relu(t, 0.3); },
      [](const Tensor& t) { return softplus(t); },
      [](const Tensor& t) { return softplus(t, 3.0, 2.0); },  // both regimes
      [](const Tensor& t) { return elu(t, 0.8); },
      [](const Tensor& t) { return sin(t); },
      [](const Tensor& t) { return cos(t); }};
  for (auto& f : fs) REQUIRE_GRADCHECK([&f](const Inputs& in) { return f(in[0]); }, {x});
}

TEST_CASE("activation arguments are checked", "[nnops]") {
  Tensor x = tensor({1.0});
  require_error([&] { softplus(x, 0.0); }, {"softplus", "beta", "positive"});
  require_error([&] { elu(x, std::nan("")); }, {"elu", "alpha"});
  require_error([&] { leaky_relu(x, INFINITY); }, {"leaky_relu", "negative_slope"});
  require_error([&] { gelu(index_tensor({1})); }, {"gelu", "f32 or f64", "i64"});
}

// ---------------------------------------------------------------- var and std

TEST_CASE("var and std match PyTorch, biased and unbiased, over all elements and one axis",
          "[nnops]") {
  // torch.var(a), torch.var(a, unbiased=False), torch.var(a, 1), torch.var(a, 0, unbiased=False),
  // torch.std(a, 1) for a = [[1, 2, 4], [-1, 0.5, 3]] in float64.
  Tensor a = tensor({1, 2, 4, -1, 0.5, 3}, {2, 3}, DType::f64);
  REQUIRE(var(a).item() == Approx(3.241666666666667).epsilon(1e-14));
  REQUIRE(var(a, false).item() == Approx(2.7013888888888893).epsilon(1e-14));
  require_values(var(a, 1), {2.333333333333333, 4.083333333333334}, 1e-14);
  require_values(var(a, 0, false), {1.0, 0.5625, 0.25}, 1e-14);
  require_values(tg::std(a, 1), {1.5275252316519465, 2.0207259421636903}, 1e-14);
  REQUIRE(var(a, -1, true, true).shape() == Shape{2, 1});
  REQUIRE(tg::std(a, 0, true, false).shape() == Shape{3});
  // n ≤ the correction: 0/0, NaN, as in PyTorch.
  REQUIRE(std::isnan(var(tensor({2.0}, DType::f64)).item()));
  REQUIRE(var(tensor({2.0}, DType::f64), false).item() == 0.0);
  // A large offset: the two-pass formula keeps the digits a one-pass E[x²] - E[x]² would lose.
  Tensor shifted = tensor({1e8 + 1, 1e8 + 2, 1e8 + 3, 1e8 + 4}, DType::f64);
  REQUIRE(var(shifted, false).item() == Approx(1.25).epsilon(1e-12));
}

TEST_CASE("gradcheck: var and std", "[nnops]") {
  Tensor x = random_input({3, 4}, 21);
  for (bool unbiased : {true, false}) {
    REQUIRE_GRADCHECK([unbiased](const Inputs& in) { return var(in[0], unbiased); }, {x});
    REQUIRE_GRADCHECK([unbiased](const Inputs& in) { return tg::std(in[0], unbiased); }, {x});
    for (int axis : {0, 1, -1}) {
      REQUIRE_GRADCHECK([=](const Inputs& in) { return var(in[0], axis, unbiased, true); }, {x});
      REQUIRE_GRADCHECK([=](const Inputs& in) { return tg::std(in[0], axis, unbiased); }, {x});
    }
  }
  Tensor y = random_input({2, 3, 4}, 22);
  REQUIRE_GRADCHECK([](const Inputs& in) { return var(in[0], 1); }, {y});
}

// ---------------------------------------------------------------- shape ops

TEST_CASE("squeeze and unsqueeze follow torch, including negative axes", "[nnops]") {
  Tensor x = arange(6, DType::f64);
  Tensor column = unsqueeze(x, 1);
  REQUIRE(column.shape() == Shape{6, 1});
  REQUIRE(unsqueeze(x, 0).shape() == Shape{1, 6});
  REQUIRE(unsqueeze(x, -1).shape() == Shape{6, 1});
  REQUIRE(unsqueeze(x, -2).shape() == Shape{1, 6});
  REQUIRE(unsqueeze(scalar(3.0), 0).shape() == Shape{1});
  Tensor y = reshape(x, {1, 2, 1, 3});
  REQUIRE(squeeze(y).shape() == Shape{2, 3});
  REQUIRE(squeeze(y, 2).shape() == Shape{1, 2, 3});
  REQUIRE(squeeze(y, -4).shape() == Shape{2, 1, 3});
  REQUIRE(squeeze(y, 1).shape() == y.shape());  // size 2: unchanged, as torch.squeeze
  require_values(squeeze(y), x.to_vector());
  require_error([&] { unsqueeze(x, 2); }, {"unsqueeze", "axis 2", "out of range"});
  require_error([&] { squeeze(x, 1); }, {"squeeze"});
  Tensor v = random_input({2, 1, 3}, 31);
  REQUIRE_GRADCHECK([](const Inputs& in) { return square(squeeze(in[0])); }, {v});
  REQUIRE_GRADCHECK([](const Inputs& in) { return square(unsqueeze(in[0], -1)); }, {v});
}

TEST_CASE("permute moves axes like torch.permute, and its gradient is the inverse", "[nnops]") {
  // x[i, j, k] = 100i + 10j + k: y = x.permute(2, 0, 1) has y[k, i, j] = x[i, j, k].
  std::vector<double> values;
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 4; ++k) values.push_back(100 * i + 10 * j + k);
  Tensor x = tensor(values, {2, 3, 4}, DType::f64);
  Tensor y = permute(x, {2, 0, -2});
  REQUIRE(y.shape() == Shape{4, 2, 3});
  std::vector<double> got = y.to_vector();
  for (int k = 0; k < 4; ++k)
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 3; ++j) REQUIRE(got[(k * 2 + i) * 3 + j] == 100 * i + 10 * j + k);
  require_error([&] { permute(x, {0, 1}); }, {"permute", "2 axes", "[2, 3, 4]"});
  require_error([&] { permute(x, {0, 1, 1}); }, {"permute", "twice"});
  Tensor v = random_input({2, 3, 4}, 32);
  Tensor w = random_input({4, 2, 3}, 33);
  REQUIRE_GRADCHECK([w](const Inputs& in) { return mul(permute(in[0], {2, 0, 1}), w); }, {v});
}

TEST_CASE("stack joins along a new axis; expand repeats size-1 axes", "[nnops]") {
  Tensor a = tensor({1, 2, 3}, DType::f64), b = tensor({4, 5, 6}, DType::f64);
  Tensor rows = stack({a, b});
  REQUIRE(rows.shape() == Shape{2, 3});
  require_values(rows, {1, 2, 3, 4, 5, 6});
  Tensor columns = stack({a, b}, -1);
  REQUIRE(columns.shape() == Shape{3, 2});
  require_values(columns, {1, 4, 2, 5, 3, 6});
  require_error([&] { stack({a, tensor({1, 2}, DType::f64)}); }, {"stack", "tensor 1", "[2]"});
  Tensor column = tensor({1, 2}, {2, 1}, DType::f64);
  Tensor wide = expand(column, {3, -1, 4});
  REQUIRE(wide.shape() == Shape{3, 2, 4});
  require_values(slice(wide, 0, 2, 3), {1, 1, 1, 1, 2, 2, 2, 2});
  require_error([&] { expand(column, {3, 4}); }, {"expand", "[2, 1]", "[3, 4]"});
  require_error([&] { expand(column, {-1, 2, 4}); }, {"expand", "-1"});
  Tensor p = random_input({3}, 34), q = random_input({3}, 35), r = random_input({2, 1}, 36);
  REQUIRE_GRADCHECK([](const Inputs& in) { return square(stack({in[0], in[1], in[0]}, 1)); },
                    {p, q});
  REQUIRE_GRADCHECK([](const Inputs& in) { return square(expand(in[0], {2, 2, 5})); }, {r});
}

// ---------------------------------------------------------------- embedding

TEST_CASE("embedding picks rows; repeated indices accumulate; padding_idx gets no gradient",
          "[nnops]") {
  Tensor weight = tensor({0, 1, 10, 11, 20, 21, 30, 31}, {4, 2}, DType::f64).set_requires_grad();
  Tensor index = index_tensor({2, 0, 2, 3, 2, 1}, {2, 3});
  Tensor y = embedding(index, weight);
  REQUIRE(y.shape() == Shape{2, 3, 2});
  require_values(y, {20, 21, 0, 1, 20, 21, 30, 31, 20, 21, 10, 11});
  backward(sum(y));
  require_values(weight.grad(), {1, 1, 1, 1, 3, 3, 1, 1});  // row 2 is used three times
  weight.zero_grad();
  // padding_idx 2 (or -2 counted from the end): its row is looked up but receives nothing.
  for (int64_t padding : {int64_t(2), int64_t(-2)}) {
    Tensor z = embedding(index, weight, padding);
    require_values(z, y.to_vector());
    backward(sum(mul(z, 2.0)));
    require_values(weight.grad(), {2, 2, 2, 2, 0, 0, 2, 2});
    weight.zero_grad();
  }
  require_error([&] { embedding(index_tensor({4}), weight); }, {"embedding", "4"});
  require_error([&] { embedding(index, weight, 4); }, {"embedding", "padding_idx 4"});
  require_error([&] { embedding(tensor({1.0}), weight); }, {"embedding", "i64"});
  require_error([&] { embedding(index, tensor({1.0, 2.0}, DType::f64)); },
                {"embedding", "[num_embeddings, embedding_dim]"});
  Tensor w = random_input({5, 3}, 41);
  Tensor repeated = index_tensor({4, 4, 0, 1, 4});
  REQUIRE_GRADCHECK([repeated](const Inputs& in) { return square(embedding(repeated, in[0])); },
                    {w});
  // (With padding_idx the gradient is not the derivative, by design, so no gradcheck there.)
}

// ---------------------------------------------------------------- comparisons on i64

TEST_CASE("comparisons take i64: accuracy from argmax and labels", "[nnops]") {
  Tensor logits = tensor({0.1, 2.0, -1.0, 3.0, 0.0, 1.0, 0.5, 0.4, 0.3}, {3, 3});
  Tensor labels = index_tensor({1, 2, 0});
  Tensor hits = equal(argmax(logits, 1), labels);
  REQUIRE(hits.dtype() == DType::i64);
  REQUIRE(hits.to_vector() == std::vector<double>{1, 0, 1});
  REQUIRE(mean(hits.to(DType::f32)).item() == Approx(2.0 / 3.0));
  Tensor a = index_tensor({1, 5, -3}), b = index_tensor({2});
  REQUIRE(less(a, b).to_vector() == std::vector<double>{1, 0, 1});
  REQUIRE(less_equal(a, b).to_vector() == std::vector<double>{1, 0, 1});
  REQUIRE(greater(a, b).to_vector() == std::vector<double>{0, 1, 0});
  REQUIRE(greater_equal(a, index_tensor({1})).to_vector() == std::vector<double>{1, 1, 0});
  // Large values compare exactly (no conversion through float).
  Tensor big = index_tensor({int64_t(1) << 60});
  REQUIRE(equal(big, index_tensor({(int64_t(1) << 60) + 1})).item() == 0.0);
  // Other ops still refuse i64, and dtypes must agree.
  require_error([&] { add(a, b); }, {"add", "f32 or f64", "i64"});
  require_error([&] { equal(argmax(logits, 1), tensor({1.0, 2.0, 0.0})); },
                {"equal", "dtypes differ", "i64", "f32"});
}

// ---------------------------------------------------------------- nn modules

TEST_CASE("nn::Embedding: N(0, 1) rows, a zero padding row without gradient, its state dict",
          "[nnops]") {
  Generator generator(7);
  nn::Embedding table(50, 8, generator, -1);  // padding_idx -1 = row 49
  REQUIRE(table.padding_idx == 49);
  REQUIRE(table.weight.shape() == Shape{50, 8});
  std::vector<double> w = table.weight.to_vector();
  double total = 0, squares = 0;
  for (int i = 0; i < 49 * 8; ++i) total += w[i], squares += w[i] * w[i];
  double mean_value = total / (49 * 8), variance = squares / (49 * 8) - mean_value * mean_value;
  REQUIRE(std::abs(mean_value) < 0.2);  // 392 draws: the standard error is 0.05
  REQUIRE(variance == Approx(1.0).margin(0.25));
  for (int i = 49 * 8; i < 50 * 8; ++i) REQUIRE(w[i] == 0.0);
  Tensor index = index_tensor({3, 49, 3}, {1, 3});
  Tensor y = table(index);
  REQUIRE(y.shape() == Shape{1, 3, 8});
  backward(sum(y));
  std::vector<double> g = table.weight.grad().to_vector();
  for (int k = 0; k < 8; ++k) {
    REQUIRE(g[3 * 8 + k] == 2.0);
    REQUIRE(g[49 * 8 + k] == 0.0);
  }
  REQUIRE(table.state_dict().contains("weight"));
  REQUIRE(table.type_name() == "Embedding(50, 8, padding_idx = 49)");
  require_error([&] { nn::Embedding(4, 2, generator, 4); }, {"Embedding", "padding_idx 4"});
}

TEST_CASE("activation modules compute their functions and chain in Sequential", "[nnops]") {
  Tensor x = tensor({-1.5, 0.5, 2.0}, DType::f64);
  nn::Sequential net;
  net.append(std::make_shared<nn::GELU>(GeluApproximation::tanh))
      .append(std::make_shared<nn::SiLU>())
      .append(std::make_shared<nn::LeakyReLU>(0.2))
      .append(std::make_shared<nn::Softplus>(2.0, 10.0))
      .append(std::make_shared<nn::ELU>(0.5))
      .append(std::make_shared<nn::Tanh>())
      .append(std::make_shared<nn::Sigmoid>())
      .append(std::make_shared<nn::ReLU>());
  Tensor expected = relu(sigmoid(tanh(elu(
      softplus(leaky_relu(silu(gelu(x, GeluApproximation::tanh)), 0.2), 2.0, 10.0), 0.5))));
  require_values(net(x), expected.to_vector(), 1e-15);
  REQUIRE(net.parameter_count() == 0);
  std::string summary = net.to_string();
  for (const char* name : {"GELU(approximate = tanh)", "SiLU", "LeakyReLU(negative_slope = 0.2)",
                           "Softplus(beta = 2, threshold = 10)", "ELU(alpha = 0.5)", "Tanh",
                           "Sigmoid", "ReLU"}) {
    INFO(summary);
    REQUIRE(summary.find(name) != std::string::npos);
  }
  require_values(nn::GELU()(x), gelu(x).to_vector(), 0);
  require_error([] { nn::Softplus(-1.0); }, {"Softplus", "beta"});
}

// ---------------------------------------------------------------- printing

TEST_CASE("tensor printing takes a precision, a threshold and edge items", "[nnops]") {
  Tensor x = tensor({1.0 / 3.0, -2.5});
  REQUIRE(x.to_string() == "tensor([ 0.3333, -2.5000], f32)");
  PrintOptions two;
  two.precision = 2;
  REQUIRE(x.to_string(two) == "tensor([ 0.33, -2.50], f32)");
  PrintOptions saved = print_options();
  PrintOptions eight;
  eight.precision = 8;
  set_print_options(eight);
  std::ostringstream os;
  os << tensor({1.0 / 3.0}, DType::f64);
  REQUIRE(os.str() == "tensor([0.33333333], f64)");
  set_print_options(saved);
  REQUIRE(tensor({1.0 / 3.0}).to_string() == "tensor([0.3333], f32)");
  PrintOptions short_summary;
  short_summary.threshold = 5;
  short_summary.edge_items = 1;
  short_summary.precision = 0;
  REQUIRE(arange(8).to_string(short_summary) == "tensor([0, ..., 7], f32)");
  require_error([] { set_print_options({-1, 1000, 3}); }, {"set_print_options", "precision"});
  require_error([] { set_print_options({4, 1000, 0}); }, {"set_print_options", "edge_items"});
}
