// tests/helpers.h — small assertions shared by the test files.
#pragma once

#include <catch2/catch.hpp>
#include <cmath>
#include <string>
#include <vector>

#include "tapegrad/tapegrad.h"

namespace tgtest {

// Every element of `t` equals `expected` within `tolerance` (absolute or relative, as Catch's
// Approx). One assertion per call; a failure names the first element that differs.
inline void require_values(const tg::Tensor& t, const std::vector<double>& expected,
                           double tolerance = 1e-6) {
  std::vector<double> values = t.to_vector();
  INFO("tensor " << t);
  REQUIRE(values.size() == expected.size());
  for (size_t i = 0; i < values.size(); ++i) {
    if (values[i] == Approx(expected[i]).margin(tolerance).epsilon(tolerance)) continue;
    INFO("element " << i << ": got " << values[i] << ", expected " << expected[i]
                    << " (tolerance " << tolerance << ")");
    FAIL("values differ");
  }
}

// No element of `t` is NaN or infinite.
inline bool all_finite(const tg::Tensor& t) {
  for (double v : t.to_vector())
    if (!std::isfinite(v)) return false;
  return true;
}

// Random f64 leaf tensor with values in [low, high), reproducible per seed.
inline tg::Tensor random_input(const tg::Shape& shape, unsigned seed, double low = -1.0,
                               double high = 1.0) {
  std::vector<double> values(shape.numel());
  uint64_t state = 0x9E3779B97F4A7C15ull * (seed + 1);
  for (double& v : values) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    v = low + (high - low) * static_cast<double>(state >> 11) / 9007199254740992.0;
  }
  return tg::tensor(values, shape, tg::DType::f64).set_requires_grad();
}

// gradcheck, and gradgradcheck (second derivatives), with the failure message shown by Catch.
#define REQUIRE_CHECK_PASSES(check, f, ...)                              \
  do {                                                                   \
    tg::GradcheckResult gradcheck_result = check(f, __VA_ARGS__);        \
    INFO(gradcheck_result.message);                                      \
    REQUIRE(gradcheck_result.ok);                                        \
  } while (0)
#define REQUIRE_GRADCHECK(f, ...) REQUIRE_CHECK_PASSES(tg::gradcheck, f, __VA_ARGS__)
#define REQUIRE_GRADGRADCHECK(f, ...) REQUIRE_CHECK_PASSES(tg::gradgradcheck, f, __VA_ARGS__)

// Runs `f` and requires a tg::Error whose message contains every one of `parts`.
template <class F>
void require_error(F&& f, const std::vector<std::string>& parts) {
  try {
    f();
  } catch (const tg::Error& e) {
    std::string message = e.what();
    for (const std::string& part : parts) {
      INFO("message: " << message);
      INFO("expected to contain: " << part);
      REQUIRE(message.find(part) != std::string::npos);
    }
    return;
  }
  FAIL("expected a tg::Error");
}

}  // namespace tgtest
