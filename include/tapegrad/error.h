// tapegrad/error.h — the one exception type, and the helper that builds its message.
//
// Every user error (bad shapes, wrong dtype, a cleared tape, a corrupt file) throws tg::Error
// with a message that names the operation, what it got and what it expected:
//   "tapegrad: mul: shapes [2, 3] and [4] cannot be broadcast together (trailing sizes must match or be 1)"
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace tg {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Builds "tapegrad: <op>: <parts...>" and throws it. Parts are anything with operator<<.
template <class... Parts>
[[noreturn]] void fail(const char* op, const Parts&... parts) {
  std::ostringstream message;
  message << "tapegrad: " << op << ": ";
  (message << ... << parts);
  throw Error(message.str());
}

// check(condition, "op", parts...) throws when the condition is false.
template <class... Parts>
void check(bool condition, const char* op, const Parts&... parts) {
  if (!condition) fail(op, parts...);
}

}  // namespace tg
