// examples/common/cli_checks.h — CLI11 validators with short messages for the examples' flags.
// (CLI11 2.1's PositiveNumber prints its range as "0.000000 to 1797693...".)
#pragma once

#include <CLI/CLI.hpp>

#include <cmath>
#include <string>

namespace examples {

// Accepts a finite number above `bound` (strictly) or at least `bound`.
inline CLI::Validator number_above(double bound, bool strictly, const std::string& description) {
  return CLI::Validator(
      [=](const std::string& text) -> std::string {
        double value = 0;
        try {
          size_t used = 0;
          value = std::stod(text, &used);
          if (used != text.size()) return "expected a number, got " + text;
        } catch (const std::exception&) {
          return "expected a number, got " + text;
        }
        bool ok = std::isfinite(value) && (strictly ? value > bound : value >= bound);
        return ok ? std::string() : "must be " + description + ", got " + text;
      },
      description);
}

inline const CLI::Validator positive = number_above(0, true, "> 0");
inline const CLI::Validator non_negative = number_above(0, false, ">= 0");

}  // namespace examples
