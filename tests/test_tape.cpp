// tests/test_tape.cpp — the tape itself: recording, accumulation, retain_graph, NoGrad, the
// traps other engines fell into, and the printed / DOT views.
#include <cmath>
#include <thread>

#include "helpers.h"

using namespace tg;
using tgtest::require_error;
using tgtest::require_values;

TEST_CASE("a value used twice receives both contributions", "[tape]") {
  Tensor a = tensor({3}, DType::f64).set_requires_grad();
  Tensor b = a + a;  // micrograd's bug: the second contribution overwrote the first
  backward(sum(b));
  require_values(a.grad(), {2});

  Tensor x = tensor({1, 2, 3}, DType::f64).set_requires_grad();
  backward(sum(x * x));
  require_values(x.grad(), {2, 4, 6});
}

TEST_CASE("gradients accumulate across backward calls until zero_grad", "[tape]") {
  Tensor x = tensor({1, 2}, DType::f64).set_requires_grad();
  backward(sum(x * 3.0));
  backward(sum(x * 3.0));
  require_values(x.grad(), {6, 6});
  x.zero_grad();
  REQUIRE_FALSE(x.grad().defined());
  backward(sum(x * 3.0));
  require_values(x.grad(), {3, 3});
}

TEST_CASE("backward twice over a retained tape gives the same gradients", "[tape]") {
  Tensor x = tensor({0.5, -1.5}, DType::f64).set_requires_grad();
  Tensor y = sum(tanh(x) * exp(x));
  backward(y, {false, true});
  std::vector<double> first = x.grad().to_vector();
  x.zero_grad();
  backward(y, {false, true});
  require_values(x.grad(), first, 0);
  tape().clear();
}

TEST_CASE("backward clears the tape; the old graph cannot be reused", "[tape]") {
  Tensor x = tensor({1, 2}, DType::f64).set_requires_grad();
  Tensor h = x * 2.0;
  Tensor y = sum(h);
  backward(y);
  REQUIRE(tape().size() == 0);
  require_error([&] { backward(y); }, {"backward", "cleared", "retain_graph"});
  require_error([&] { sum(h); }, {"sum", "cleared", "detach"});
  // detach() turns it into a constant that can be used again
  Tensor z = sum(h.detach() * x);
  backward(z);
  require_values(x.grad(), {2 + 2, 2 + 4});
}

TEST_CASE("backward needs a scalar or an explicit output gradient", "[tape]") {
  Tensor x = tensor({1, 2, 3}, DType::f64).set_requires_grad();
  Tensor y = x * x;
  require_error([&] { backward(y); }, {"backward", "[3]", "not a scalar", "grad_y"});
  backward(y, tensor({1, 0, 2}, DType::f64));
  require_values(x.grad(), {2, 0, 12});
  Tensor z = x * x;
  require_error([&] { backward(z, ones({2}, DType::f64)); }, {"backward", "[2]", "[3]"});
  tape().clear();
}

TEST_CASE("backward of something that does not require grad is an error", "[tape]") {
  Tensor c = tensor({1, 2});
  require_error([&] { backward(sum(c)); }, {"backward", "does not require grad"});
}

TEST_CASE("NoGrad records nothing", "[tape]") {
  tape().clear();
  Tensor x = tensor({1, 2}, DType::f64).set_requires_grad();
  {
    NoGrad no_grad;
    REQUIRE_FALSE(grad_enabled());
    Tensor y = exp(x) * 2.0;
    REQUIRE_FALSE(y.requires_grad());
  }
  REQUIRE(grad_enabled());
  REQUIRE(tape().size() == 0);
}

TEST_CASE("only ops with an input that needs grad are recorded", "[tape]") {
  tape().clear();
  Tensor w = tensor({1, 2}, DType::f64).set_requires_grad();
  Tensor c = tensor({3, 4}, DType::f64);
  Tensor constant = c * 2.0;  // no input needs grad: not recorded
  REQUIRE(tape().size() == 0);
  Tensor y = sum(w * constant);
  REQUIRE(tape().size() == 3);  // leaf w, mul, sum
  REQUIRE(tape().entry(1).inputs == std::vector<int64_t>{0, -1});
  backward(y);
  require_values(w.grad(), {6, 8});
  REQUIRE_FALSE(c.grad().defined());
}

TEST_CASE("an input not reached by backward keeps an undefined gradient", "[tape]") {
  Tensor a = tensor({1}, DType::f64).set_requires_grad();
  Tensor b = tensor({1}, DType::f64).set_requires_grad();
  Tensor unused = b * 2.0;
  backward(sum(a * 3.0));
  require_values(a.grad(), {3});
  REQUIRE_FALSE(b.grad().defined());
}

TEST_CASE("backward on a leaf gives the seed", "[tape]") {
  Tensor x = scalar(2.0, DType::f64).set_requires_grad();
  backward(x);
  require_values(x.grad(), {1});
}

// 10^6 in the release build, 10^5 under the sanitizers (tests/meson.build sets it).
#ifndef TG_TEST_CHAIN_LENGTH
#define TG_TEST_CHAIN_LENGTH 100000
#endif

TEST_CASE("a long chain needs no recursion (10^6 entries)", "[tape]") {
  Tensor x = scalar(1.0, DType::f64).set_requires_grad();
  Tensor y = x;
  for (int i = 0; i < TG_TEST_CHAIN_LENGTH; ++i) y = y * 1.0;
  backward(y);
  require_values(x.grad(), {1});
}

TEST_CASE("saved tensors are released as soon as backward used them", "[tape]") {
  Tensor x = tensor({1, 2}, DType::f64).set_requires_grad();
  std::weak_ptr<Storage> saved;  // the tape keeps saved tensors as handles of its own: watch the data
  bool released_before_earlier_entries_ran = false;
  // An identity op recorded first, so backward runs it last: by then exp's entry is done.
  Tensor x_again = x.detach();
  record("probe", x_again, {x}, [&](const Tensor& grad, Gradients& g) {
    released_before_earlier_entries_ran = saved.expired();
    g.add(0, grad);
  });
  Tensor loss;
  {
    Tensor h = exp(x_again);  // exp saves its output h for backward
    saved = h.impl()->storage;
    loss = sum(h);
  }
  REQUIRE_FALSE(saved.expired());  // only the tape holds h now
  backward(loss);
  REQUIRE(released_before_earlier_entries_ran);
  require_values(x.grad(), {std::exp(1.0), std::exp(2.0)});
}

TEST_CASE("a backward function that throws leaves no gradients held by the tape", "[tape]") {
  Tensor x = tensor({1, 2}, DType::f64).set_requires_grad();
  Tensor a = x.detach(), b = x.detach();
  record("identity", a, {x}, [](const Tensor& grad, Gradients& g) { g.add(0, grad); });
  std::weak_ptr<TensorImpl> gradient;
  record("boom", b, {x}, [&](const Tensor& grad, Gradients&) {
    gradient = grad.impl_ptr();  // add handed this same tensor to `a`'s entry, still waiting
    fail("boom", "failing on purpose");
  });
  require_error([&] { backward(sum(a + b)); }, {"boom", "failing on purpose"});
  REQUIRE(gradient.expired());
  tape().clear();
}

TEST_CASE("leaf gradients never share storage with each other", "[tape]") {
  Tensor a = tensor({1, 2}, DType::f64).set_requires_grad();
  Tensor b = tensor({3, 4}, DType::f64).set_requires_grad();
  backward(sum(a + b));  // add passes the same gradient tensor to both inputs
  REQUIRE(a.grad().raw_data() != b.grad().raw_data());
  {
    NoGrad no_grad;
    a.grad().fill_(0);
  }
  require_values(b.grad(), {1, 1});
}

TEST_CASE("tape().print() and to_dot() show the recorded program", "[tape]") {
  tape().clear();
  Tensor x = tensor({1, 2, 3}, DType::f64).set_requires_grad().set_name("x");
  Tensor w = tensor({4, 5, 6}, DType::f64).set_requires_grad().set_name("w");
  Tensor y = sum(tanh(x * w));
  std::string text = tape().to_string();
  INFO(text);
  REQUIRE(text.find("tape: 5 entries") != std::string::npos);
  REQUIRE(text.find("#0  leaf x") != std::string::npos);
  REQUIRE(text.find("#2  mul(#0, #1)") != std::string::npos);
  REQUIRE(text.find("#3  tanh(#2)") != std::string::npos);
  REQUIRE(text.find("#4  sum(#3)") != std::string::npos);
  REQUIRE(text.find("-> [] f64") != std::string::npos);
  std::string dot = tape().to_dot();
  REQUIRE(dot.find("digraph tape") != std::string::npos);
  REQUIRE(dot.find("n0 -> n2") != std::string::npos);
  REQUIRE(dot.find("n3 -> n4") != std::string::npos);
  backward(y);
}

TEST_CASE("set_requires_grad is for leaves of floating dtype", "[tape]") {
  Tensor x = tensor({1.0}, DType::f64).set_requires_grad();
  Tensor y = x * 2.0;
  require_error([&] { y.set_requires_grad(false); }, {"set_requires_grad", "leaf"});
  require_error([] { index_tensor({1}).set_requires_grad(); }, {"set_requires_grad", "i64"});
  tape().clear();
}

TEST_CASE("each thread records on its own tape", "[tape]") {
  tape().clear();
  Tensor x = tensor({2}, DType::f64).set_requires_grad();
  Tensor y = x * 3.0;
  size_t other_size = 1;
  std::thread worker([&] { other_size = tape().size(); });
  worker.join();
  REQUIRE(other_size == 0);
  REQUIRE(tape().size() == 2);
  backward(sum(y));
  require_values(x.grad(), {3});
}

TEST_CASE("the tape print shows scalars, constants, saved bytes, the root and gradients",
          "[tape]") {
  tape().clear();
  Tensor x = tensor({1, 2, 3}, DType::f64).set_name("x");  // a constant: needs no gradient
  Tensor w = tensor({4, 5, 6}, DType::f64).set_requires_grad().set_name("layer.weight");
  Tensor y = sum(clamp(x * w, -1, 20) * 0.999);
  std::string text = tape().to_string();
  INFO(text);
  REQUIRE(text.find("#0  leaf layer.weight") != std::string::npos);
  REQUIRE(text.find("#1  mul(const x [3] f64, #0)") != std::string::npos);
  REQUIRE(text.find("#2  clamp(#1, -1, 20)") != std::string::npos);
  REQUIRE(text.find("#3  mul_scalar(#2, 0.999)") != std::string::npos);
  REQUIRE(text.find("saved 24 B") != std::string::npos);  // mul saved x and w: 2 storages
  REQUIRE(text.find("<- root") == std::string::npos);
  REQUIRE(text.find("grad [") == std::string::npos);

  TapeMemoryReport memory = tape().memory_report();
  REQUIRE(memory.saved_bytes.size() == tape().size());
  REQUIRE(memory.saved_bytes[1] == 48);  // x and w, 3 f64 each
  REQUIRE(memory.saved_bytes[2] == 24);  // clamp saved its input
  REQUIRE(memory.total_saved_bytes == 72);
  REQUIRE(memory.to_string().find("72 B saved for backward") != std::string::npos);

  tape().track_memory(true);
  backward(y, {false, true});
  tape().track_memory(false);
  text = tape().to_string();
  REQUIRE(text.find("#4  sum(#3)") != std::string::npos);
  REQUIRE(text.find("<- root") != std::string::npos);
  REQUIRE(text.find("-> [3] f64   grad [3]") != std::string::npos);
  memory = tape().memory_report();
  REQUIRE(memory.tracked);
  REQUIRE(memory.backward_peak_bytes >= memory.backward_start_bytes);

  std::string dot = tape().to_dot();
  INFO(dot);
  REQUIRE(dot.find("n0 -> n1 [label=\"1\"]") != std::string::npos);  // w feeds argument 1
  REQUIRE(dot.find("c1_0 [label=\"const x") != std::string::npos);   // the constant, drawn
  REQUIRE(dot.find("c1_0 -> n1 [label=\"0\"") != std::string::npos);
  REQUIRE(dot.find("mul_scalar(0.999)") != std::string::npos);
  REQUIRE(dot.find("penwidth=3, xlabel=\"root\"") != std::string::npos);
  REQUIRE(dot.find("grad [3]") != std::string::npos);
  tape().clear();
}

TEST_CASE("modules name their parameters by path, and the tape shows them", "[tape]") {
  Generator generator(4);
  struct Net : nn::Module {
    std::shared_ptr<nn::Sequential> encoder;
    explicit Net(Generator& g)
        : encoder(register_module("encoder", std::make_shared<nn::Sequential>(
                                                 std::vector<std::shared_ptr<nn::Module>>{
                                                     std::make_shared<nn::Linear>(3, 2, g)}))) {}
  } net(generator);
  REQUIRE(net.encoder->parameters()[0].name() == "encoder.0.weight");
  REQUIRE(net.encoder->parameters()[1].name() == "encoder.0.bias");
  tape().clear();
  Tensor y = sum(net.encoder->forward(ones({1, 3})));
  std::string text = tape().to_string();
  INFO(text);
  REQUIRE(text.find("leaf encoder.0.weight") != std::string::npos);
  REQUIRE(text.find("leaf encoder.0.bias") != std::string::npos);
  tape().clear();
}
