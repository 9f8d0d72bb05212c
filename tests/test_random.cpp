// tests/test_random.cpp — Philox against Random123's known answers, and the samplers' statistics.
#include <algorithm>
#include <cmath>
#include <set>

#include "../src/kernels/philox.h"
#include "helpers.h"

using namespace tg;
using tgtest::require_error;

TEST_CASE("Philox 4x32-10 matches the Random123 known-answer vectors", "[random]") {
  struct Vector {
    uint32_t counter[4], key[2], expected[4];
  };
  const Vector vectors[] = {
      {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
      {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
       {0xffffffff, 0xffffffff},
       {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
      {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
       {0xa4093822, 0x299f31d0},
       {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
  };
  for (const Vector& v : vectors) {
    kernels::PhiloxBlock counter = {{v.counter[0], v.counter[1], v.counter[2], v.counter[3]}};
    kernels::PhiloxBlock out = kernels::philox4x32_10(counter, v.key[0], v.key[1]);
    for (int i = 0; i < 4; ++i) REQUIRE(out.x[i] == v.expected[i]);
  }
}

TEST_CASE("the same seed and stream give the same numbers; others differ", "[random]") {
  Generator a(42), b(42), c(43), d(42, 1);
  std::vector<double> first = randn({100}, a).to_vector();
  REQUIRE(first == randn({100}, b).to_vector());
  REQUIRE(first != randn({100}, c).to_vector());
  REQUIRE(first != randn({100}, d).to_vector());
  REQUIRE(a.offset() == 25);  // 100 floats, 4 per block
}

TEST_CASE("a generator state restores the exact sequence", "[random]") {
  Generator g(7);
  rand({10}, g);
  Generator::State saved = g.state();
  std::vector<double> next = rand({10}, g, DType::f64).to_vector();
  Generator restored;
  restored.set_state(saved);
  REQUIRE(rand({10}, restored, DType::f64).to_vector() == next);
}

TEST_CASE("one draw of n equals the first n of a longer draw (counter-based)", "[random]") {
  Generator a(5), b(5);
  std::vector<double> short_draw = randn({6}, a, DType::f64).to_vector();
  std::vector<double> long_draw = randn({10}, b, DType::f64).to_vector();
  for (int i = 0; i < 6; ++i) REQUIRE(short_draw[i] == long_draw[i]);
}

TEST_CASE("uniform and normal have the right moments", "[random]") {
  Generator g(1);
  for (DType dtype : {DType::f32, DType::f64}) {
    std::vector<double> u = uniform({200000}, -2, 3, g, dtype).to_vector();
    double mean = 0, low = 1e9, high = -1e9;
    for (double v : u) {
      mean += v / u.size();
      low = std::min(low, v);
      high = std::max(high, v);
    }
    REQUIRE(mean == Approx(0.5).margin(0.02));
    REQUIRE(low >= -2);
    REQUIRE(high < 3);
    std::vector<double> z = normal({200000}, 1, 2, g, dtype).to_vector();
    double m = 0, var = 0;
    for (double v : z) m += v / z.size();
    for (double v : z) var += (v - m) * (v - m) / z.size();
    REQUIRE(m == Approx(1).margin(0.02));
    REQUIRE(std::sqrt(var) == Approx(2).epsilon(0.01));
    bool all_finite = true;
    for (double v : z) all_finite = all_finite && std::isfinite(v);
    REQUIRE(all_finite);
  }
}

TEST_CASE("bernoulli and categorical sample their distributions", "[random]") {
  Generator g(3);
  Tensor p = full({100000}, 0.3);
  REQUIRE(mean(bernoulli(p, g)).item() == Approx(0.3).margin(0.01));
  Tensor probabilities = tensor({0.1, 0.6, 0.3});
  Tensor logits = broadcast_to(log(probabilities), {60000, 3});
  std::vector<double> draws = categorical(logits, g).to_vector();
  double counts[3] = {0, 0, 0};
  for (double d : draws) counts[static_cast<int>(d)] += 1.0 / draws.size();
  REQUIRE(counts[0] == Approx(0.1).margin(0.01));
  REQUIRE(counts[1] == Approx(0.6).margin(0.01));
  REQUIRE(counts[2] == Approx(0.3).margin(0.01));
  // a -inf logit is never drawn
  Tensor never = broadcast_to(tensor({-INFINITY, 0}), {1000, 2});
  std::vector<double> picks = categorical(never, g).to_vector();
  REQUIRE(std::count(picks.begin(), picks.end(), 1.0) == 1000);
}

TEST_CASE("randperm is a permutation", "[random]") {
  Generator g(9);
  std::vector<double> order = randperm(1000, g).to_vector();
  std::set<double> seen(order.begin(), order.end());
  REQUIRE(seen.size() == 1000);
  REQUIRE(*seen.begin() == 0);
  REQUIRE(*seen.rbegin() == 999);
  bool moved = false;
  for (int i = 0; i < 1000; ++i) moved = moved || order[i] != i;
  REQUIRE(moved);
}

TEST_CASE("random errors", "[random]") {
  Generator g;
  require_error([&] { uniform({2}, 1, 0, g); }, {"uniform", "greater than"});
  require_error([&] { normal({2}, 0, -1, g); }, {"normal", ">= 0"});
  require_error([&] { rand({2}, g, DType::i64); }, {"f32 or f64", "i64"});
}
