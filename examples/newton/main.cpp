// examples/newton — Newton's method with Hessian-vector products, against gradient descent and
// Adam.
//
// Newton-CG (Nocedal & Wright, Numerical Optimization, Algorithm 7.1) solves H·p = -g by
// conjugate gradients, where every H·d is a Hessian-vector product from the tape: the gradient g
// is recorded once per iteration (create_graph), and each CG step differentiates ⟨g, d⟩ again
// over that retained graph. The Hessian itself (785² or 100² numbers here) is never formed. A
// backtracking (Armijo) line search makes the step safe where f is not convex.
//
// Problems: L2-regularised logistic regression on two Fashion-MNIST classes (T-shirt/top
// against shirt by default, a hard pair), and the Rosenbrock function in 2 and 100 dimensions.
// Methods: gradient descent (with the same backtracking line search, so it needs no tuning), Adam
// (tg::optim::Adam) and Newton-CG. Prints iterations, loss, gradient norm and time; writes a
// CSV of every iteration of every run and one convergence plot per problem.
//
//   ./build/examples/newton/newton [--problems logistic,rosenbrock2,rosenbrock100]
//       [--seconds 10] [--out out/newton] [--data /usr/share/datasets/fashion-mnist]
#include <CLI/CLI.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <iostream>
#include <sstream>

#include "cli_checks.h"
#include "fashion_mnist.h"
#include "plot.h"
#include "tapegrad/tapegrad.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::vector<std::string> problems = {"logistic", "rosenbrock2", "rosenbrock100"};
  std::string data = examples::kFashionMnistDir;
  std::vector<int> classes = {0, 6};
  double lambda = 1e-3;       // L2 weight of the logistic regression
  double seconds = 10;        // time budget of each run
  int max_iterations = 100000;
  double tolerance = 1e-8;    // stop when |∇f| falls below it
  double adam_lr = 1e-2;
  int max_cg = 100;           // CG steps per Newton iteration
  int threads = 0;            // BLAS threads (0: all cores)
  std::string out = "out/newton";
};

// ---------------------------------------------------------------- problems

// f: θ -> loss (a 0-d f64 tensor) for a flat parameter vector θ.
struct Problem {
  std::string name, title;
  tg::Tensor start;
  std::function<tg::Tensor(const tg::Tensor&)> loss;
  double minimum = NAN;  // known optimal value (NAN: unknown, the best value found is used)
};

// Σ_i 100·(x_{i+1} - x_i²)² + (1 - x_i)², minimum 0 at (1, ..., 1). Starts at the classic
// (-1.2, 1, -1.2, 1, ...).
Problem rosenbrock(int64_t n) {
  std::vector<double> start(n);
  for (int64_t i = 0; i < n; ++i) start[i] = i % 2 == 0 ? -1.2 : 1.0;
  Problem p;
  p.name = "rosenbrock" + std::to_string(n);
  p.title = "Rosenbrock, " + std::to_string(n) + " dimensions";
  p.start = tg::tensor(start, tg::DType::f64);
  p.loss = [n](const tg::Tensor& x) {
    tg::Tensor head = tg::slice(x, 0, 0, n - 1), tail = tg::slice(x, 0, 1, n);
    return tg::sum(tg::square(tail - tg::square(head)) * 100.0 + tg::square(1.0 - head));
  };
  p.minimum = 0;
  return p;
}

struct Classes {
  tg::Tensor pixels;  // [n, 784] f64 in [0, 1]
  tg::Tensor labels;  // [n] f64: 1 for the second class, 0 for the first
};

// The images of two classes of a split, as f64 rows.
Classes two_classes(const tg::data::Dataset& data, int first, int second) {
  std::vector<double> labels = data.labels.to_vector();
  std::vector<int64_t> rows;
  std::vector<double> targets;
  for (size_t i = 0; i < labels.size(); ++i)
    if (labels[i] == first || labels[i] == second) {
      rows.push_back(static_cast<int64_t>(i));
      targets.push_back(labels[i] == second ? 1.0 : 0.0);
    }
  tg::check(!rows.empty(), "newton", "no images of classes ", first, " and ", second);
  tg::Tensor pixels = tg::reshape(data.images, {data.size(), -1});
  return {tg::index_select(pixels, 0, tg::index_tensor(rows)).to(tg::DType::f64),
          tg::tensor(targets, tg::DType::f64)};
}

// θ = (w, b): logits x·w + b.
tg::Tensor logits(const Classes& data, const tg::Tensor& theta) {
  const int64_t features = data.pixels.size(1);
  tg::Tensor w = tg::reshape(tg::slice(theta, 0, 0, features), {1, features});
  tg::Tensor b = tg::slice(theta, 0, features, features + 1);
  return tg::reshape(tg::linear(data.pixels, w, b), {data.pixels.size(0)});
}

// mean BCE(x·w + b, y) + λ/2·|w|²
Problem logistic_regression(const Classes& train, double lambda, const std::string& title) {
  const int64_t features = train.pixels.size(1);
  Problem p;
  p.name = "logistic";
  p.title = title;
  p.start = tg::zeros({features + 1}, tg::DType::f64);
  p.loss = [train, lambda, features](const tg::Tensor& theta) {
    tg::Tensor w = tg::slice(theta, 0, 0, features);
    return tg::bce_with_logits(logits(train, theta), train.labels) +
           tg::sum(tg::square(w)) * (lambda / 2);
  };
  return p;
}

double accuracy(const Classes& data, const tg::Tensor& theta) {
  tg::NoGrad no_grad;
  tg::Tensor predicted = tg::greater(logits(data, theta), tg::scalar(0, tg::DType::f64));
  return tg::mean(tg::equal(predicted, data.labels)).item();
}

// ---------------------------------------------------------------- evaluations

double dot(const tg::Tensor& a, const tg::Tensor& b) {
  tg::NoGrad no_grad;
  return tg::sum(a * b).item();
}

double value(const Problem& p, const tg::Tensor& theta) {
  tg::NoGrad no_grad;
  return p.loss(theta).item();
}

// f(θ) and ∇f(θ), one forward and one backward pass.
struct Evaluation {
  double loss;
  tg::Tensor grad;
};
Evaluation evaluate(const Problem& p, const tg::Tensor& theta) {
  tg::Tensor x = theta.detach().set_requires_grad();
  tg::Tensor f = p.loss(x);
  double loss = f.item();
  return {loss, tg::grad({f}, {x})[0]};
}

// Armijo backtracking along `direction` from θ (f(θ) = loss, slope = ⟨∇f, direction⟩ < 0):
// the first step = first·2^-k with f(θ + step·direction) ≤ f + 1e-4·step·slope.
struct Step {
  tg::Tensor theta;
  double loss, size;
  int evaluations;
};
Step backtrack(const Problem& p, const tg::Tensor& theta, double loss, const tg::Tensor& direction,
               double slope, double first) {
  Step step{theta, loss, first, 0};
  for (int k = 0; k < 60; ++k, step.size *= 0.5) {
    tg::Tensor candidate;
    {
      tg::NoGrad no_grad;
      candidate = theta + direction * step.size;
    }
    double f = value(p, candidate);
    ++step.evaluations;
    if (f <= loss + 1e-4 * step.size * slope) {
      step.theta = candidate;
      step.loss = f;
      return step;
    }
  }
  step.size = 0;  // no decrease found: the iterate is as good as floating point allows
  return step;
}

// ---------------------------------------------------------------- the three methods

// One row per iteration: what the CSV files and the plots show.
struct Trace {
  std::string method;
  std::vector<double> seconds, loss, grad_norm;
  std::vector<int64_t> evaluations;  // gradients + function values + Hessian-vector products
  tg::Tensor theta;
  int64_t iterations() const { return static_cast<int64_t>(loss.size()) - 1; }
};

class Run {
 public:
  Run(std::string method, const Options& options) : options_(options), start_(Clock::now()) {
    trace_.method = std::move(method);
  }
  // Records an iterate; false when the run should stop (converged, or out of budget).
  bool record(double loss, const tg::Tensor& grad, int64_t evaluations) {
    double norm = std::sqrt(dot(grad, grad)), elapsed = seconds();
    trace_.seconds.push_back(elapsed);
    trace_.loss.push_back(loss);
    trace_.grad_norm.push_back(norm);
    trace_.evaluations.push_back(evaluations);
    const int64_t iteration = trace_.iterations();
    bool go_on = norm > options_.tolerance && std::isfinite(loss) &&
                 iteration < options_.max_iterations && elapsed < options_.seconds;
    if (!go_on || iteration % report_every_ == 0) {
      std::printf("  %-10s iteration %6lld  loss %.10e  |grad| %.3e  %7.3f s\n",
                  trace_.method.c_str(), static_cast<long long>(iteration), loss, norm, elapsed);
      if (iteration >= 10 * report_every_) report_every_ *= 10;
    }
    return go_on;
  }
  Trace finish(const tg::Tensor& theta) {
    trace_.theta = theta;
    return trace_;
  }

 private:
  double seconds() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }
  const Options& options_;
  Clock::time_point start_;
  Trace trace_;
  int64_t report_every_ = 1;
};

// θ ← θ - step·∇f, the step from backtracking, starting at twice the last one.
Trace gradient_descent(const Problem& p, const Options& options) {
  Run run("gd", options);
  tg::Tensor theta = p.start;
  Evaluation e = evaluate(p, theta);
  int64_t evaluations = 1;
  double step = 1;
  while (run.record(e.loss, e.grad, evaluations)) {
    tg::Tensor direction = -e.grad;
    Step s = backtrack(p, theta, e.loss, direction, -dot(e.grad, e.grad), std::min(1.0, 2 * step));
    evaluations += s.evaluations;
    if (s.size == 0) break;
    theta = s.theta;
    step = s.size;
    e = evaluate(p, theta);
    ++evaluations;
  }
  return run.finish(theta);
}

// tg::optim::Adam on θ, one gradient per step.
Trace adam(const Problem& p, const Options& options) {
  Run run("adam", options);
  tg::Tensor theta = p.start.detach().clone().set_requires_grad();
  tg::optim::Adam optimizer({theta}, {options.adam_lr});
  for (int64_t evaluations = 1;; ++evaluations) {
    tg::Tensor loss = p.loss(theta);
    optimizer.zero_grad();
    tg::backward(loss);
    if (!run.record(loss.item(), theta.grad(), evaluations)) break;
    optimizer.step();
  }
  return run.finish(theta.detach());
}

// Newton-CG: CG on H·p = -g until |H·p + g| ≤ min(0.5, √|g|)·|g| (superlinear convergence near
// the minimum), stopping early at negative curvature (then the CG iterate so far, or -g on the
// first step, is still a descent direction); then backtracking from the full step.
Trace newton_cg(const Problem& p, const Options& options) {
  Run run("newton-cg", options);
  tg::Tensor theta = p.start;
  int64_t evaluations = 0;
  for (;;) {
    tg::Tensor x = theta.detach().set_requires_grad();
    tg::Tensor f = p.loss(x);
    tg::Tensor g = tg::grad({f}, {x}, {}, true)[0];  // recorded: H·d = ∂⟨g, d⟩/∂x
    const double loss = f.item();
    tg::Tensor gradient = g.detach();
    ++evaluations;
    if (!run.record(loss, gradient, evaluations)) {
      tg::tape().clear();
      break;
    }
    const double g_norm = std::sqrt(dot(gradient, gradient));
    const double forcing = std::min(0.5, std::sqrt(g_norm)) * g_norm;
    tg::Tensor z = tg::zeros_like(gradient), r = gradient, d = -gradient;
    tg::Tensor direction = -gradient;
    double rr = dot(r, r);
    for (int j = 0; j < options.max_cg; ++j) {
      tg::Tensor hd = tg::grad({g}, {x}, {d}, {false, true})[0];  // the same graph, again
      ++evaluations;
      const double curvature = dot(d, hd);
      if (curvature <= 0) {  // negative curvature: H is not positive definite along d
        if (j > 0) direction = z;
        break;
      }
      tg::NoGrad no_grad;
      const double alpha = rr / curvature;
      z = z + d * alpha;
      r = r + hd * alpha;
      direction = z;
      const double rr_next = dot(r, r);
      if (std::sqrt(rr_next) <= forcing) break;
      d = d * (rr_next / rr) - r;
      rr = rr_next;
    }
    tg::tape().clear();  // the recorded gradient is done with
    Step s = backtrack(p, theta, loss, direction, dot(gradient, direction), 1.0);
    evaluations += s.evaluations;
    if (s.size == 0) break;
    theta = s.theta;
  }
  return run.finish(theta);
}

// ---------------------------------------------------------------- output

using Runs = std::vector<std::pair<Problem, std::vector<Trace>>>;

// <problem>_<method>.csv: every iteration of one run.
void write_csv(const std::string& path, const Trace& t) {
  std::vector<std::vector<double>> rows;
  for (size_t i = 0; i < t.loss.size(); ++i)
    rows.push_back({static_cast<double>(i), t.seconds[i], t.loss[i], t.grad_norm[i],
                    static_cast<double>(t.evaluations[i])});
  tg::data::write_csv(path, {"iteration", "seconds", "loss", "grad_norm", "evaluations"}, rows);
}

// log10(f - f*) against time, one line per method.
void write_plot(const std::string& path, const Problem& problem, const std::vector<Trace>& traces,
                double best) {
  examples::Plot plot(problem.title + ": distance to the minimum", "seconds (log scale)",
                      std::isnan(problem.minimum) ? "log10(f - best f found)" : "log10(f - f*)");
  plot.log_x().legend_outside();
  const double floor = -16;
  auto distance = [&](double f) { return std::max(floor, std::log10(std::max(f - best, 0.0))); };
  double top = floor;
  for (size_t m = 0; m < traces.size(); ++m) {
    std::vector<double> y;
    for (double f : traces[m].loss) y.push_back(distance(f));
    top = std::max(top, y[0]);
    plot.line(traces[m].method, traces[m].seconds, y, examples::palette(static_cast<int>(m)));
  }
  plot.y_range(floor - 0.5, top + 0.5);
  plot.save_png(path);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"newton: Newton-CG with Hessian-vector products against gradient descent and Adam"};
  Options o;
  app.add_option("--problems", o.problems, "any of logistic, rosenbrock2, rosenbrock100")
      ->delimiter(',')
      ->check(CLI::IsMember({"logistic", "rosenbrock2", "rosenbrock100"}));
  app.add_option("--data", o.data, "folder with Fashion-MNIST (or MNIST) files, for logistic");
  app.add_option("--classes", o.classes, "the two classes of the logistic regression")
      ->delimiter(',')
      ->expected(2)
      ->check(CLI::Range(0, 9));
  app.add_option("--lambda", o.lambda, "L2 weight of the logistic regression")
      ->check(examples::non_negative);
  app.add_option("--seconds", o.seconds, "time budget of each run")->check(examples::positive);
  app.add_option("--max-iterations", o.max_iterations, "iteration budget of each run")
      ->check(CLI::PositiveNumber);
  app.add_option("--tolerance", o.tolerance, "stop when |grad f| falls below it")
      ->check(examples::positive);
  app.add_option("--adam-lr", o.adam_lr, "Adam's learning rate")->check(examples::positive);
  app.add_option("--max-cg", o.max_cg, "conjugate-gradient steps per Newton iteration")
      ->check(CLI::PositiveNumber);
  app.add_option("--threads", o.threads, "BLAS threads (0: all cores)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--out", o.out, "output folder for the CSV files and the plots");
  CLI11_PARSE(app, argc, argv);
  tg::set_num_threads(o.threads);

  try {
    tg::check(o.classes[0] != o.classes[1], "newton", "--classes needs two different classes");
    Runs runs;
    Classes test;
    for (const std::string& name : o.problems) {
      Problem problem;
      if (name == "logistic") {
        tg::data::Dataset train_set, test_set;
        if (!examples::load_fashion_mnist(o.data, tg::Device::cpu_device(), train_set, test_set)) {
          std::cerr << "Or leave the regression out: --problems rosenbrock2,rosenbrock100\n";
          return 1;
        }
        Classes train = two_classes(train_set, o.classes[0], o.classes[1]);
        test = two_classes(test_set, o.classes[0], o.classes[1]);
        std::ostringstream title;
        title << "logistic regression, classes " << o.classes[0] << " and " << o.classes[1]
              << ", L2 " << o.lambda;
        problem = logistic_regression(train, o.lambda, title.str());
        std::cout << title.str() << ": " << train.pixels.size(0) << " training images, "
                  << train.pixels.size(1) + 1 << " parameters\n";
      } else {
        problem = rosenbrock(name == "rosenbrock2" ? 2 : 100);
        std::cout << problem.title << ", from (-1.2, 1, ...)\n";
      }
      std::vector<Trace> traces;
      for (auto method : {gradient_descent, adam, newton_cg}) traces.push_back(method(problem, o));
      runs.emplace_back(problem, traces);
      std::cout << '\n';
    }

    std::printf("%-15s %-10s %10s %12s %18s %11s %9s", "problem", "method", "iterations",
                "evaluations", "loss", "|grad|", "seconds");
    if (test.pixels.defined()) std::printf("  test accuracy");
    std::printf("\n");
    std::filesystem::create_directories(o.out);
    for (const auto& [problem, traces] : runs) {
      double best = problem.minimum;
      if (std::isnan(best)) {
        best = INFINITY;
        for (const Trace& t : traces)
          for (double f : t.loss) best = std::min(best, f);
      }
      for (const Trace& t : traces) {
        std::printf("%-15s %-10s %10lld %12lld %18.10e %11.3e %9.3f", problem.name.c_str(),
                    t.method.c_str(), static_cast<long long>(t.iterations()),
                    static_cast<long long>(t.evaluations.back()), t.loss.back(),
                    t.grad_norm.back(), t.seconds.back());
        if (problem.name == "logistic") std::printf("  %13.4f", accuracy(test, t.theta));
        std::printf("\n");
      }
      write_plot(o.out + "/newton_" + problem.name + ".png", problem, traces, best);
      for (const Trace& t : traces)
        write_csv(o.out + "/" + problem.name + "_" + t.method + ".csv", t);
    }
    std::cout << "\nwrote " << o.out << "/newton_<problem>.png and <problem>_<method>.csv\n";
    return 0;
  } catch (const tg::Error& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
}
