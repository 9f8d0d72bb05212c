// tests/test_index.cpp — gather, index_select and one_hot, and their index checks.
#include "helpers.h"

using namespace tg;
using tgtest::random_input;
using tgtest::require_error;
using tgtest::require_values;

TEST_CASE("gather picks one element per row", "[index]") {
  Tensor x = tensor({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor picked = gather(x, 1, index_tensor({2, 0}, {2, 1}));
  REQUIRE(picked.shape() == Shape{2, 1});
  require_values(picked, {3, 4});
  require_values(gather(x, 0, index_tensor({1, 0, 1}, {1, 3})), {4, 2, 6});
  Tensor w = random_input({3, 4}, 41);
  Tensor index = index_tensor({0, 3, 3, 1, 2, 2}, {3, 2});  // repeats accumulate
  REQUIRE_GRADCHECK([index](const std::vector<Tensor>& in) { return gather(in[0], 1, index); }, {w});
}

TEST_CASE("index_select picks whole slices", "[index]") {
  Tensor x = reshape(arange(6), {3, 2});
  require_values(index_select(x, 0, index_tensor({2, 0, 2})), {4, 5, 0, 1, 4, 5});
  require_values(index_select(x, 1, index_tensor({1})), {1, 3, 5});
  Tensor w = random_input({4, 3}, 42);
  REQUIRE_GRADCHECK([](const std::vector<Tensor>& in) {
    return index_select(in[0], 0, index_tensor({3, 1, 3}));
  }, {w});
}

TEST_CASE("one_hot", "[index]") {
  Tensor h = one_hot(index_tensor({2, 0}), 3);
  REQUIRE(h.shape() == Shape{2, 3});
  require_values(h, {0, 0, 1, 1, 0, 0});
  REQUIRE(one_hot(index_tensor({1, 1, 0, 0}, {2, 2}), 2, DType::f64).shape() == Shape{2, 2, 2});
}

TEST_CASE("bad indices are errors, never out-of-bounds reads", "[index]") {
  Tensor x = ones({2, 3});
  require_error([&] { gather(x, 1, index_tensor({3, 0}, {2, 1})); }, {"gather", "index 3", "[0, 3)"});
  require_error([&] { gather(x, 1, index_tensor({-1, 0}, {2, 1})); }, {"gather", "index -1"});
  require_error([&] { gather(x, 1, index_tensor({0, 0})); }, {"gather", "rank"});
  require_error([&] { gather(x, 1, tensor({0, 0}, {2, 1})); }, {"gather", "i64"});
  require_error([&] { index_select(x, 0, index_tensor({2})); }, {"index_select", "index 2"});
  require_error([] { one_hot(index_tensor({5}), 3); }, {"one_hot", "index 5", "[0, 3)"});
}
