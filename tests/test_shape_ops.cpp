// tests/test_shape_ops.cpp — reshape, flatten, transpose, slice, concat.
#include "helpers.h"

using namespace tg;
using tgtest::random_input;
using tgtest::require_error;
using tgtest::require_values;

TEST_CASE("reshape is a view and infers -1", "[shape]") {
  Tensor x = arange(6, DType::f64);
  Tensor y = reshape(x, {2, -1});
  REQUIRE(y.shape() == Shape{2, 3});
  REQUIRE(y.raw_data() == x.raw_data());
  REQUIRE(flatten(reshape(x, {1, 2, 3})).shape() == Shape{1, 6});
  require_error([&] { reshape(x, {4, -1}); }, {"reshape", "[6]", "[4, -1]"});
  require_error([&] { reshape(x, {-1, -1}); }, {"reshape", "only one"});
  require_error([&] { reshape(x, {5}); }, {"reshape", "[6]", "[5]"});
  Tensor w = random_input({2, 3}, 31);
  REQUIRE_GRADCHECK([](const std::vector<Tensor>& in) { return reshape(in[0], {3, 2}) * 2.0; }, {w});
}

TEST_CASE("sizes whose product overflows int64 are an error, not undefined behaviour", "[shape]") {
  const int64_t huge = int64_t(1) << 62;
  REQUIRE(Shape({huge, 4, 0}).numel() == 0);  // a zero size makes any product 0
  require_error([&] { Shape({huge, 4}).numel(); }, {"shape", "[4611686018427387904, 4]", "64-bit"});
  Tensor empty = zeros({0});
  REQUIRE(reshape(empty, {huge, 2, 0}).shape() == Shape{huge, 2, 0});
  require_error([&] { reshape(empty, {huge, 4}); }, {"64-bit"});
  require_error([&] { reshape(empty, {huge, 4, -1}); }, {"reshape", "[4611686018427387904, 4, -1]"});
  require_error([&] { zeros({huge, 4}); }, {"[4611686018427387904, 4]"});
}

TEST_CASE("flatten keeps the first axis, also when a size is 0", "[shape]") {
  REQUIRE(flatten(ones({2, 3, 4})).shape() == Shape{2, 12});
  REQUIRE(flatten(ones({0, 3, 4})).shape() == Shape{0, 12});  // as torch.flatten(x, 1)
  REQUIRE(flatten(ones({2, 0, 4})).shape() == Shape{2, 0});
}

TEST_CASE("transpose swaps axes and its gradient swaps back", "[shape]") {
  Tensor x = tensor({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor t = transpose(x);
  REQUIRE(t.shape() == Shape{3, 2});
  require_values(t, {1, 4, 2, 5, 3, 6});
  Tensor cube = reshape(arange(24), {2, 3, 4});
  Tensor swapped = transpose(cube, 0, 2);
  REQUIRE(swapped.shape() == Shape{4, 3, 2});
  REQUIRE(swapped.at({3, 1, 0}) == cube.at({0, 1, 3}));
  Tensor w = random_input({2, 3, 4}, 32);
  REQUIRE_GRADCHECK([](const std::vector<Tensor>& in) { return transpose(in[0], 0, 2); }, {w});
  require_error([] { transpose(ones({3})); }, {"transpose", "2 dimensions"});
}

TEST_CASE("slice copies a range and routes the gradient back", "[shape]") {
  Tensor x = reshape(arange(12), {3, 4});
  require_values(slice(x, 0, 1, 3), {4, 5, 6, 7, 8, 9, 10, 11});
  require_values(slice(x, 1, 1, 3), {1, 2, 5, 6, 9, 10});
  require_values(slice(x, -1, -1, 4), {3, 7, 11});
  REQUIRE(slice(x, 0, 2, 2).numel() == 0);
  Tensor w = random_input({3, 4}, 33);
  REQUIRE_GRADCHECK([](const std::vector<Tensor>& in) { return slice(in[0], 1, 1, 3); }, {w});
  require_error([&] { slice(x, 0, 2, 5); }, {"slice", "[2, 5)", "[3, 4]"});
}

TEST_CASE("concat joins along an axis and splits the gradient", "[shape]") {
  Tensor a = tensor({1, 2, 3, 4}, {2, 2}), b = tensor({5, 6}, {2, 1});
  Tensor c = concat({a, b}, 1);
  REQUIRE(c.shape() == Shape{2, 3});
  require_values(c, {1, 2, 5, 3, 4, 6});
  require_values(concat({a, tensor({7, 8}, {1, 2})}, 0), {1, 2, 3, 4, 7, 8});
  Tensor p = random_input({2, 2}, 34), q = random_input({2, 3}, 35);
  Tensor constant = tensor({1, 2}, {2, 1}, DType::f64);
  REQUIRE_GRADCHECK([constant](const std::vector<Tensor>& in) {
    return concat({in[0], constant, in[1]}, 1);
  }, {p, q});
  require_error([&] { concat({a, tensor({1, 2, 3}, {1, 3})}, 0); }, {"concat", "[1, 3]", "[2, 2]"});
  require_error([] { concat({}, 0); }, {"concat", "at least one"});
}
