// examples/tape_demo — record a small computation, run backward, and look at the tape.
//
//   ./build/examples/tape_demo [--dot tape.dot]
#include <CLI/CLI.hpp>
#include <fstream>
#include <iostream>

#include "tapegrad/tapegrad.h"

int main(int argc, char** argv) {
  CLI::App app{"tapegrad tape demo: f(x, w) = sum(tanh(x * w) + w^2), its gradient and its tape"};
  std::string dot_path;
  app.add_option("--dot", dot_path, "also write the tape as a Graphviz file");
  CLI11_PARSE(app, argc, argv);

  try {
    tg::Tensor x = tg::tensor({0.5, -1.0, 2.0}, tg::DType::f64).set_name("x");
    tg::Tensor w = tg::tensor({1.5, 0.25, -0.5}, tg::DType::f64).set_requires_grad().set_name("w");

    tg::Tensor y = tg::sum(tg::tanh(x * w) + tg::square(w));  // recorded on the tape

    std::cout << "f(x, w) = " << y.item() << "\n\n";
    tg::tape().print();  // what backward will walk, in reverse
    if (!dot_path.empty()) {
      std::ofstream(dot_path) << tg::tape().to_dot();
      std::cout << "\nwrote " << dot_path << " (render: dot -Tpng " << dot_path << " -o tape.png)\n";
    }

    tg::backward(y);  // df/dw = x * (1 - tanh²(x w)) + 2w
    std::cout << "\ndf/dw = " << w.grad() << "\n";

    tg::GradcheckResult check = tg::gradcheck(
        [&](const std::vector<tg::Tensor>& in) { return tg::sum(tg::tanh(x * in[0]) + tg::square(in[0])); },
        {w});
    std::cout << "finite differences agree: " << (check.ok ? "yes" : check.message) << "\n";
    return check.ok ? 0 : 1;
  } catch (const tg::Error& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
}
