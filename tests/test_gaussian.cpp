// tests/test_gaussian.cpp — the Gaussian KL terms and the reparameterization trick: the source
// documents' VAE numbers, gradcheck over logvar ∈ [-30, 30], identities, and KL against a Monte
// Carlo estimate drawn through reparameterize.
#include <cmath>

#include "helpers.h"

using namespace tg;
using tgtest::random_input;
using tgtest::require_error;
using tgtest::all_finite;
using tgtest::require_values;


TEST_CASE("gaussian_kl_standard reproduces the VAE numbers of the source document", "[gaussian]") {
  // -0.5·Σ(1 + logvar - μ² - e^logvar) over 64 latent dimensions
  for (DType dtype : {DType::f32, DType::f64}) {
    REQUIRE(gaussian_kl_standard(zeros({1, 64}, dtype), zeros({1, 64}, dtype)).item() == 0);
    REQUIRE(gaussian_kl_standard(full({1, 64}, 2, dtype), zeros({1, 64}, dtype)).item() ==
            Approx(128).epsilon(1e-6));
    REQUIRE(gaussian_kl_standard(zeros({1, 64}, dtype), full({1, 64}, 2, dtype)).item() ==
            Approx(140.4498).epsilon(1e-6));  // 32·(e² - 3)
  }
}

TEST_CASE("gaussian_kl_standard reductions: sum, batchmean, mean, none", "[gaussian]") {
  Tensor mu = random_input({4, 3}, 1).detach(), logvar = random_input({4, 3}, 2).detach();
  Tensor each = gaussian_kl_standard(mu, logvar, Reduction::none);
  REQUIRE(each.shape() == Shape{4, 3});
  double total = sum(each).item();
  REQUIRE(gaussian_kl_standard(mu, logvar).item() == Approx(total).epsilon(1e-12));
  REQUIRE(gaussian_kl_standard(mu, logvar, Reduction::batchmean).item() == Approx(total / 4));
  REQUIRE(gaussian_kl_standard(mu, logvar, Reduction::mean).item() == Approx(total / 12));
}

TEST_CASE("gaussian_kl against N(0, 1) equals gaussian_kl_standard (broadcast prior)",
          "[gaussian]") {
  Tensor mu = random_input({5, 4}, 3, -2, 2).detach(), logvar = random_input({5, 4}, 4, -3, 3).detach();
  Tensor zero = zeros({}, DType::f64);
  std::vector<double> standard = gaussian_kl_standard(mu, logvar, Reduction::none).to_vector();
  require_values(gaussian_kl(mu, logvar, zero, zero, Reduction::none), standard, 1e-12);
}

TEST_CASE("gaussian_kl: the closed form of KL(N(μ1, σ1²) ‖ N(μ2, σ2²))", "[gaussian]") {
  // log(σ2/σ1) + (σ1² + (μ1 - μ2)²)/(2σ2²) - ½ for μ1 = 1, σ1 = 2, μ2 = -1, σ2 = 3
  double expected = std::log(3.0 / 2.0) + (4.0 + 4.0) / 18.0 - 0.5;
  Tensor value = gaussian_kl(tensor({1}, DType::f64), tensor({std::log(4.0)}, DType::f64),
                             tensor({-1}, DType::f64), tensor({std::log(9.0)}, DType::f64));
  REQUIRE(value.item() == Approx(expected).epsilon(1e-12));
}

TEST_CASE("gaussian KL is ≥ 0, 0 only for equal Gaussians, and asymmetric", "[gaussian]") {
  Tensor mu1 = random_input({50}, 5, -3, 3).detach(), v1 = random_input({50}, 6, -4, 4).detach();
  Tensor mu2 = random_input({50}, 7, -3, 3).detach(), v2 = random_input({50}, 8, -4, 4).detach();
  for (double v : gaussian_kl(mu1, v1, mu2, v2, Reduction::none).to_vector()) REQUIRE(v > 0);
  for (double v : gaussian_kl(mu1, v1, mu1, v1, Reduction::none).to_vector()) REQUIRE(v == 0);
  double forward = gaussian_kl(mu1, v1, mu2, v2).item(), reverse = gaussian_kl(mu2, v2, mu1, v1).item();
  REQUIRE(std::abs(forward - reverse) > 1e-3 * forward);
}

TEST_CASE("gradcheck: gaussian_kl_standard and gaussian_kl, ordinary and logvar ±30",
          "[gaussian]") {
  Tensor mu = random_input({3, 4}, 9, -2, 2), logvar = random_input({3, 4}, 10, -2, 2);
  for (Reduction r : {Reduction::none, Reduction::sum, Reduction::batchmean})
    REQUIRE_GRADCHECK([r](const std::vector<Tensor>& in) { return gaussian_kl_standard(in[0], in[1], r); },
                      {mu, logvar});
  // At logvar = ±30 the values reach e^30 ≈ 1e13 (and e^60 for gaussian_kl), where a finite
  // difference of μ is lost in rounding; so the extremes check the logvar gradients, per element,
  // with μ held constant (its gradient there is μ·e^-v2, checked in the ordinary range).
  Tensor extreme = tensor({-30, -12, 0.5, 12, 30, 25}, {2, 3}, DType::f64).set_requires_grad();
  Tensor mu_fixed = random_input({2, 3}, 23, -3, 3).detach();
  REQUIRE_GRADCHECK([mu_fixed](const std::vector<Tensor>& in) {
    return gaussian_kl_standard(mu_fixed, in[0], Reduction::none);
  }, {extreme});
  Tensor v1 = tensor({-30, 30, 0, -30, 30, 10}, {2, 3}, DType::f64).set_requires_grad();
  Tensor v2 = tensor({30, -30, 0, -30, 29, -10}, {2, 3}, DType::f64).set_requires_grad();
  Tensor m1 = random_input({2, 3}, 13, -1, 1).detach(), m2 = random_input({2, 3}, 14, -1, 1).detach();
  REQUIRE_GRADCHECK([m1, m2](const std::vector<Tensor>& in) {
    return gaussian_kl(m1, in[0], m2, in[1], Reduction::none);
  }, {v1, v2});
  // a broadcast prior: [latent] against [batch, latent]
  Tensor prior_mu = random_input({4}, 15), prior_logvar = random_input({4}, 16);
  REQUIRE_GRADCHECK([](const std::vector<Tensor>& in) { return gaussian_kl(in[0], in[1], in[2], in[3]); },
                    {mu, logvar, prior_mu, prior_logvar});
}

TEST_CASE("gaussian KL values and gradients stay finite in float32 for logvar ∈ [-30, 30]",
          "[gaussian]") {
  Tensor mu = tensor({0, 5, -5, 1, 0, 3}, DType::f32).set_requires_grad();
  Tensor logvar = tensor({-30, -30, 30, 30, 0, 15}, DType::f32).set_requires_grad();
  Tensor loss = add(gaussian_kl_standard(mu, logvar), gaussian_kl(mu, logvar, mu * 0.5, logvar * -1.0));
  REQUIRE(std::isfinite(loss.item()));
  backward(loss);
  REQUIRE(all_finite(mu.grad()));
  REQUIRE(all_finite(logvar.grad()));
}

TEST_CASE("reparameterize: z = μ + e^(logvar/2)·ε with ε from the generator", "[gaussian]") {
  Tensor mu = random_input({3, 5}, 17), logvar = random_input({3, 5}, 18);
  Generator g(123), same(123);
  Tensor z = reparameterize(mu, logvar, g);
  Tensor eps = randn({3, 5}, same, DType::f64);
  std::vector<double> expected = add(mu.detach(), mul(exp(mul(logvar.detach(), 0.5)), eps)).to_vector();
  require_values(z, expected, 1e-12);
  REQUIRE(g.offset() == same.offset());  // it used exactly the noise randn_like would
  Generator again(123);
  REQUIRE(reparameterize(mu, logvar, again).to_vector() == z.to_vector());
}

TEST_CASE("reparameterize: gradients reach μ and logvar, never ε", "[gaussian]") {
  Tensor mu = random_input({2, 3}, 19), logvar = random_input({2, 3}, 20);
  Tensor eps = random_input({2, 3}, 21);  // even asking for its gradient does not get one
  backward(sum(reparameterize(mu, logvar, eps)));
  require_values(mu.grad(), std::vector<double>(6, 1.0));
  std::vector<double> expected = mul(mul(exp(mul(logvar.detach(), 0.5)), eps.detach()), 0.5).to_vector();
  require_values(logvar.grad(), expected, 1e-12);
  REQUIRE_FALSE(eps.grad().defined());
  Tensor fixed = random_input({2, 3}, 22).detach();
  REQUIRE_GRADCHECK([fixed](const std::vector<Tensor>& in) { return reparameterize(in[0], in[1], fixed); },
                    {mu.detach().clone().set_requires_grad(), logvar.detach().clone().set_requires_grad()});
}

TEST_CASE("reparameterize samples have mean μ and standard deviation e^(logvar/2)", "[gaussian]") {
  const int64_t n = 100000;
  Tensor mu = full({n}, 1.5, DType::f64), logvar = full({n}, std::log(0.25), DType::f64);
  Generator g(7);
  std::vector<double> z = reparameterize(mu, logvar, g).to_vector();
  double m = 0, var = 0;
  for (double v : z) m += v / n;
  for (double v : z) var += (v - m) * (v - m) / (n - 1);
  REQUIRE(std::abs(m - 1.5) < 4 * 0.5 / std::sqrt(double(n)));
  REQUIRE(std::sqrt(var) == Approx(0.5).epsilon(0.01));
}

TEST_CASE("gaussian_kl equals a Monte Carlo estimate through reparameterize (3 standard errors)",
          "[gaussian]") {
  // KL(q ‖ p) = E_q[log q(z) - log p(z)], z = μ1 + σ1·ε. The log-densities' constants cancel.
  const int64_t n = 200000;
  const double mu1 = 0.7, logvar1 = std::log(0.5), mu2 = -0.4, logvar2 = std::log(2.0);
  Generator g(2024);
  Tensor z = reparameterize(full({n}, mu1, DType::f64), full({n}, logvar1, DType::f64), g);
  auto log_density = [](const Tensor& x, double mu, double logvar) {
    return mul(add(div(square(sub(x, mu)), std::exp(logvar)), logvar), -0.5);
  };
  std::vector<double> samples = sub(log_density(z, mu1, logvar1), log_density(z, mu2, logvar2)).to_vector();
  double mean = 0, var = 0;
  for (double v : samples) mean += v / n;
  for (double v : samples) var += (v - mean) * (v - mean) / (n - 1);
  double standard_error = std::sqrt(var / n);
  double exact = gaussian_kl(tensor({mu1}, DType::f64), tensor({logvar1}, DType::f64),
                             tensor({mu2}, DType::f64), tensor({logvar2}, DType::f64)).item();
  INFO("exact " << exact << "  Monte Carlo " << mean << " ± " << standard_error);
  REQUIRE(std::abs(mean - exact) < 3 * standard_error);
  REQUIRE(standard_error < 0.01 * exact);  // the check has teeth: the error bar is small
}

TEST_CASE("gaussian primitives reject mismatched shapes", "[gaussian]") {
  require_error([] { gaussian_kl_standard(zeros({2, 3}), zeros({2, 4})); },
                {"gaussian_kl_standard", "mu [2, 3]", "logvar [2, 4]"});
  require_error([] { reparameterize(zeros({2}), zeros({2}), zeros({3})); },
                {"reparameterize", "eps [3]"});
  require_error([] { gaussian_kl(zeros({2}), zeros({3}), zeros({2}), zeros({2})); },
                {"gaussian_kl", "broadcast"});
}

TEST_CASE("gradcheck: reparameterize at logvar ±30", "[gaussian]") {
  Tensor mu = random_input({2, 3}, 24, -2, 2);
  Tensor logvar = tensor({-30, 30, -12, 12, 0, 25}, {2, 3}, DType::f64).set_requires_grad();
  Tensor eps = random_input({2, 3}, 25).detach();
  REQUIRE_GRADCHECK([eps](const std::vector<Tensor>& in) { return reparameterize(in[0], in[1], eps); }, {mu, logvar});
  Tensor z = reparameterize(mu.detach().to(DType::f32).set_requires_grad(),
                            logvar.detach().to(DType::f32).set_requires_grad(), eps.to(DType::f32));
  REQUIRE(all_finite(z));
}
