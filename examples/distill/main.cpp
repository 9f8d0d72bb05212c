// examples/distill — knowledge distillation on Fashion-MNIST: a 784-1200-1200-10 dropout teacher,
// a 784-64-10 student trained on labels alone and, for every temperature T and label weight α of
// a sweep, with distillation_loss; all averaged over seeds, in the form of Hinton et al.'s table.
//
//   ./build/examples/distill/distill                          # the full sweep, writes out/distill/
//   ./build/examples/distill/distill --seeds 1 --temperatures 4 --alphas 0.1 --teacher-epochs 2
//
// See README.md in this folder for the flags, the outputs and what was measured.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "blas_kernels.h"
#include "cli_checks.h"
#include "distill.h"
#include "fashion_mnist.h"
#include "plot.h"

namespace {

struct Options {
  int64_t teacher_hidden = 1200, student_hidden = 64;
  double input_dropout = 0.2, hidden_dropout = 0.5;
  int teacher_epochs = 20, student_epochs = 20;
  std::vector<double> temperatures = {1, 2, 4, 8};
  std::vector<double> alphas = {0.1, 0.5, 0.9};
  std::vector<uint64_t> seeds = {1, 2, 3};
  int64_t batch = 128;
  double lr = 1e-3;
  int64_t validation = 5000;  // training images held out to choose (T, α)
  int threads = 0;
  bool retrain_teacher = false;
  std::string data = examples::kFashionMnistDir;
  std::string out = "out/distill";
};

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

struct Split {
  tg::Tensor x, y;
  int64_t size() const { return x.size(0); }
};

// One trained model's result.
struct Result {
  uint64_t seed = 0;
  std::string model;  // "teacher", "student", "distilled"
  double temperature = 0, alpha = 0;
  int64_t validation_errors = 0, test_errors = 0;
  double test_kl = 0;  // mean KL(teacher ‖ model) on the test set, at T (1 for the others)
  double seconds = 0;
};

tg::optim::Adam make_adam(tg::nn::Module& model, double lr) {
  tg::optim::AdamOptions options;
  options.lr = lr;
  return tg::optim::Adam(model.parameters(), options);
}

// ---------------------------------------------------------------- teacher

// Trains the seed's teacher, or reuses the one saved by an earlier run with the same settings.
std::shared_ptr<tg::nn::Sequential> teacher_for(uint64_t seed, const Options& o, const Split& train,
                                                const Split& validation, tg::Generator& masks) {
  tg::Generator init(seed, 10), shuffle(seed, 11);
  auto teacher = distill::make_teacher(train.x.size(1), o.teacher_hidden, 10, o.input_dropout,
                                       o.hidden_dropout, init, masks);
  // The file name carries what the weights depend on, so changed flags never reuse a stale one.
  char name[160];
  std::snprintf(name, sizeof name, "/teacher_seed%llu_h%lld_e%d_in%g_hid%g_val%lld.tgc",
                static_cast<unsigned long long>(seed), static_cast<long long>(o.teacher_hidden),
                o.teacher_epochs, o.input_dropout, o.hidden_dropout,
                static_cast<long long>(o.validation));
  const std::string path = o.out + name;
  tg::TrainingState state;
  state.model = teacher.get();
  if (!o.retrain_teacher && std::filesystem::exists(path)) {
    tg::load_checkpoint(path, state);
    std::printf("teacher (seed %llu): reusing %s\n", static_cast<unsigned long long>(seed),
                path.c_str());
    return teacher;
  }
  tg::optim::Adam adam = make_adam(*teacher, o.lr);
  for (int epoch = 1; epoch <= o.teacher_epochs; ++epoch) {
    Clock::time_point start = Clock::now();
    double loss = distill::train_epoch(*teacher, adam, train.x, train.y, {}, o.batch, shuffle);
    double seconds = seconds_since(start);
    int64_t errors = distill::count_errors(distill::predict(*teacher, validation.x), validation.y);
    std::printf("teacher (seed %llu) epoch %d/%d  loss %.4f  validation errors %lld/%lld  %.1f s\n",
                static_cast<unsigned long long>(seed), epoch, o.teacher_epochs, loss,
                static_cast<long long>(errors), static_cast<long long>(validation.size()), seconds);
    std::fflush(stdout);
  }
  state.epoch = o.teacher_epochs;
  tg::save_checkpoint(path, state);
  std::printf("teacher (seed %llu): saved %s\n", static_cast<unsigned long long>(seed),
              path.c_str());
  return teacher;
}

// ---------------------------------------------------------------- the table

struct Summary {
  std::string model;
  double temperature = 0, alpha = 0;
  double validation_errors = 0, test_errors = 0, test_errors_sd = 0, test_kl = 0;
  int runs = 0;
};

// Mean (and sample standard deviation of the test errors) over seeds, per (model, T, α).
std::vector<Summary> summarise(const std::vector<Result>& results) {
  std::vector<Summary> out;
  std::map<std::tuple<std::string, double, double>, std::vector<const Result*>> groups;
  std::vector<std::tuple<std::string, double, double>> order;
  for (const Result& r : results) {
    auto key = std::make_tuple(r.model, r.temperature, r.alpha);
    if (groups[key].empty()) order.push_back(key);
    groups[key].push_back(&r);
  }
  for (const auto& key : order) {
    const auto& runs = groups[key];
    Summary s{std::get<0>(key), std::get<1>(key), std::get<2>(key)};
    s.runs = static_cast<int>(runs.size());
    for (const Result* r : runs) {
      s.validation_errors += static_cast<double>(r->validation_errors) / s.runs;
      s.test_errors += static_cast<double>(r->test_errors) / s.runs;
      s.test_kl += r->test_kl / s.runs;
    }
    double squares = 0;
    for (const Result* r : runs) squares += std::pow(r->test_errors - s.test_errors, 2);
    s.test_errors_sd = s.runs > 1 ? std::sqrt(squares / (s.runs - 1)) : 0;
    out.push_back(s);
  }
  return out;
}

void write_outputs(const Options& o, const std::vector<Result>& results,
                   const std::vector<Summary>& summary, int64_t test_size) {
  // Numbers only: the teachers in one file, the students in another, where `distilled` is 1 for
  // a distilled student and temperature and alpha are NaN for the label-only one.
  const double nan = std::nan("");
  auto d = [](int64_t v) { return static_cast<double>(v); };
  std::vector<std::vector<double>> teachers, students, means;
  for (const Result& r : results) {
    const double accuracy = 1 - d(r.test_errors) / d(test_size);
    if (r.model == "teacher") {
      teachers.push_back({d(static_cast<int64_t>(r.seed)), d(r.validation_errors), d(r.test_errors),
                          accuracy, r.seconds});
      continue;
    }
    const bool distilled = r.model == "distilled";
    students.push_back({d(static_cast<int64_t>(r.seed)), distilled ? 1.0 : 0.0,
                        distilled ? r.temperature : nan, distilled ? r.alpha : nan,
                        d(r.validation_errors), d(r.test_errors), accuracy, r.test_kl, r.seconds});
  }
  for (const Summary& s : summary) {
    if (s.model == "teacher") continue;
    const bool distilled = s.model == "distilled";
    means.push_back({distilled ? 1.0 : 0.0, distilled ? s.temperature : nan,
                     distilled ? s.alpha : nan, d(s.runs), s.validation_errors, s.test_errors,
                     s.test_errors_sd, 1 - s.test_errors / d(test_size), s.test_kl});
  }
  tg::data::write_csv(o.out + "/teachers.csv",
                      {"seed", "validation_errors", "test_errors", "test_accuracy", "seconds"},
                      teachers);
  tg::data::write_csv(o.out + "/students.csv",
                      {"seed", "distilled", "temperature", "alpha", "validation_errors",
                       "test_errors", "test_accuracy", "test_kl_to_teacher", "seconds"},
                      students);
  tg::data::write_csv(
      o.out + "/summary.csv",
      {"distilled", "temperature", "alpha", "seeds", "mean_validation_errors", "mean_test_errors",
       "sd_test_errors", "mean_test_accuracy", "mean_test_kl_to_teacher"},
      means);

  // Test errors against T, one line per α, with the label-only student and the teacher as
  // dashed levels.
  examples::Plot plot("Distilled 784-" + std::to_string(o.student_hidden) +
                          "-10 students on Fashion-MNIST (mean of " +
                          std::to_string(o.seeds.size()) + " seeds)",
                      "temperature T", "test errors (of " + std::to_string(test_size) + ")");
  const double t_low = *std::min_element(o.temperatures.begin(), o.temperatures.end());
  const double t_high = *std::max_element(o.temperatures.begin(), o.temperatures.end());
  int colour = 0;
  for (double alpha : o.alphas) {
    std::vector<double> ts, errors;
    for (const Summary& s : summary)
      if (s.model == "distilled" && s.alpha == alpha)
        ts.push_back(s.temperature), errors.push_back(s.test_errors);
    char label[48];
    std::snprintf(label, sizeof label, "distilled, alpha %g", alpha);
    plot.line(label, ts, errors, examples::palette(colour++));
  }
  for (const Summary& s : summary)
    if (s.model != "distilled")
      plot.line(s.model == "student" ? "student, labels only" : "teacher", {t_low, t_high},
                {s.test_errors, s.test_errors}, examples::palette(s.model == "student" ? 7 : 3),
                true);
  if (t_high > t_low) plot.x_range(t_low - 0.2, t_high + 0.2);
  // Room above the highest line for the legend (inside the frame, top right).
  double low = 1e300, high = -1e300;
  for (const Summary& s : summary)
    low = std::min(low, s.test_errors), high = std::max(high, s.test_errors);
  const double span = std::max(high - low, 10.0);
  plot.y_range(low - 0.05 * span, high + 0.6 * span);
  plot.save_png(o.out + "/distill.png");
}

void print_table(const Options& o, const std::vector<Summary>& summary, int64_t test_size) {
  const Summary* teacher = nullptr;
  const Summary* student = nullptr;
  const Summary* best = nullptr;  // the distilled configuration with the fewest validation errors
  for (const Summary& s : summary) {
    if (s.model == "teacher") teacher = &s;
    if (s.model == "student") student = &s;
    if (s.model == "distilled" && (!best || s.validation_errors < best->validation_errors))
      best = &s;
  }
  const double n = static_cast<double>(test_size);
  std::printf("\nsweep: mean test errors (of %lld) over %zu seed(s), distilled students\n",
              static_cast<long long>(test_size), o.seeds.size());
  std::printf("%8s", "T \\ alpha");
  for (double alpha : o.alphas) std::printf("  %12g", alpha);
  std::printf("\n");
  for (double t : o.temperatures) {
    std::printf("%8g ", t);
    for (double alpha : o.alphas)
      for (const Summary& s : summary)
        if (s.model == "distilled" && s.temperature == t && s.alpha == alpha)
          std::printf("  %7.1f ±%4.1f", s.test_errors, s.test_errors_sd);
    std::printf("\n");
  }
  std::printf(
      "\nloss of a distilled student: T²·KL(teacher_T ‖ student_T) + alpha·CE(labels), "
      "the soft term at full weight (Hinton et al. mix them convexly); (T, alpha) chosen "
      "by validation errors on %lld held-out training images\n\n",
      static_cast<long long>(o.validation));
  std::printf("%-48s %14s %22s\n", "model", "test accuracy",
              ("test errors (of " + std::to_string(test_size) + ")").c_str());
  char label[96];
  if (teacher) {
    std::snprintf(label, sizeof label, "teacher 784-%lld-%lld-10, dropout %g/%g",
                  static_cast<long long>(o.teacher_hidden),
                  static_cast<long long>(o.teacher_hidden), o.input_dropout, o.hidden_dropout);
    std::printf("%-48s %13.2f%% %16.1f ±%4.1f\n", label, 100 * (1 - teacher->test_errors / n),
                teacher->test_errors, teacher->test_errors_sd);
  }
  std::snprintf(label, sizeof label, "student 784-%lld-10, labels only",
                static_cast<long long>(o.student_hidden));
  if (student)
    std::printf("%-48s %13.2f%% %16.1f ±%4.1f\n", label, 100 * (1 - student->test_errors / n),
                student->test_errors, student->test_errors_sd);
  if (best) {
    std::snprintf(label, sizeof label, "student 784-%lld-10, distilled (T %g, alpha %g)",
                  static_cast<long long>(o.student_hidden), best->temperature, best->alpha);
    std::printf("%-48s %13.2f%% %16.1f ±%4.1f\n", label, 100 * (1 - best->test_errors / n),
                best->test_errors, best->test_errors_sd);
  }
  if (student && best)
    std::printf("\ndistilled - labels only: %+.1f test errors (%s), over %zu seed(s)\n",
                best->test_errors - student->test_errors,
                best->test_errors < student->test_errors ? "the distilled student is better"
                                                         : "the distilled student is not better",
                o.seeds.size());
}

// ---------------------------------------------------------------- the run

int run(const Options& o) {
  if (o.threads > 0) tg::set_num_threads(o.threads);
  tg::data::Dataset train_set, test_set;
  if (!examples::load_fashion_mnist(o.data, tg::Device::cpu_device(), train_set, test_set))
    return 1;
  const int64_t n = train_set.size(), pixels = train_set.images.numel() / n;
  tg::check(o.validation > 0 && o.validation < n, "distill", "--validation must lie in (0, ", n,
            "), got ", o.validation);
  tg::Tensor all_x = tg::reshape(train_set.images, {n, pixels});
  // The last `validation` training images choose (T, α); the models train on the rest.
  Split train{tg::slice(all_x, 0, 0, n - o.validation),
              tg::slice(train_set.labels, 0, 0, n - o.validation)};
  Split validation{tg::slice(all_x, 0, n - o.validation, n),
                   tg::slice(train_set.labels, 0, n - o.validation, n)};
  Split test{tg::reshape(test_set.images, {test_set.size(), pixels}), test_set.labels};
  std::filesystem::create_directories(o.out);
  std::printf(
      "distillation on %s: %lld train, %lld validation, %lld test images; teacher "
      "784-%lld-%lld-10 (%d epochs), student 784-%lld-10 (%d epochs), Adam lr %g, batch "
      "%lld\n%s, %d thread(s)\n",
      o.data.c_str(), static_cast<long long>(train.size()),
      static_cast<long long>(validation.size()), static_cast<long long>(test.size()),
      static_cast<long long>(o.teacher_hidden), static_cast<long long>(o.teacher_hidden),
      o.teacher_epochs, static_cast<long long>(o.student_hidden), o.student_epochs, o.lr,
      static_cast<long long>(o.batch), examples::blas_kernels().c_str(), tg::num_threads());
  std::fflush(stdout);

  std::vector<Result> results;
  const Clock::time_point start = Clock::now();
  for (uint64_t seed : o.seeds) {
    tg::Generator masks(seed, 12);
    Clock::time_point teacher_start = Clock::now();
    auto teacher = teacher_for(seed, o, train, validation, masks);
    tg::Tensor teacher_train = distill::predict(*teacher, train.x);
    tg::Tensor teacher_test = distill::predict(*teacher, test.x);
    Result teacher_result{seed, "teacher"};
    teacher_result.validation_errors =
        distill::count_errors(distill::predict(*teacher, validation.x), validation.y);
    teacher_result.test_errors = distill::count_errors(teacher_test, test.y);
    teacher_result.seconds = seconds_since(teacher_start);
    results.push_back(teacher_result);
    std::printf("seed %llu  teacher                 validation errors %4lld  test errors %4lld\n",
                static_cast<unsigned long long>(seed),
                static_cast<long long>(teacher_result.validation_errors),
                static_cast<long long>(teacher_result.test_errors));

    // The student alone, then one distilled student per (T, α). Every student of a seed starts
    // from the same weights and sees the same batches (same generators): only the loss differs.
    std::vector<distill::Objective> objectives{{}};
    for (double t : o.temperatures)
      for (double alpha : o.alphas) objectives.push_back({teacher_train, t, alpha});
    for (const distill::Objective& objective : objectives) {
      Clock::time_point run_start = Clock::now();
      tg::Generator init(seed, 0), shuffle(seed, 1);
      auto student = distill::make_student(pixels, o.student_hidden, 10, init);
      tg::optim::Adam adam = make_adam(*student, o.lr);
      for (int epoch = 0; epoch < o.student_epochs; ++epoch)
        distill::train_epoch(*student, adam, train.x, train.y, objective, o.batch, shuffle);
      const bool distilled = objective.teacher_logits.defined();
      Result r{seed, distilled ? "distilled" : "student", distilled ? objective.temperature : 0,
               distilled ? objective.alpha : 0};
      tg::Tensor test_logits = distill::predict(*student, test.x);
      r.validation_errors =
          distill::count_errors(distill::predict(*student, validation.x), validation.y);
      r.test_errors = distill::count_errors(test_logits, test.y);
      r.test_kl =
          distill::mean_kl(teacher_test, test_logits, distilled ? objective.temperature : 1);
      r.seconds = seconds_since(run_start);
      results.push_back(r);
      char what[48];
      if (distilled)
        std::snprintf(what, sizeof what, "distilled T %g alpha %g", r.temperature, r.alpha);
      else
        std::snprintf(what, sizeof what, "student, labels only");
      std::printf(
          "seed %llu  %-22s  validation errors %4lld  test errors %4lld  KL to teacher "
          "%.4f  %.1f s\n",
          static_cast<unsigned long long>(seed), what, static_cast<long long>(r.validation_errors),
          static_cast<long long>(r.test_errors), r.test_kl, r.seconds);
      std::fflush(stdout);
    }
  }
  std::vector<Summary> summary = summarise(results);
  write_outputs(o, results, summary, test.size());
  print_table(o, summary, test.size());
  std::printf(
      "\nwrote %s/{teachers.csv, students.csv, summary.csv, distill.png} and the teacher "
      "checkpoint(s); total time %.1f s\n",
      o.out.c_str(), seconds_since(start));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Knowledge distillation with temperature on Fashion-MNIST, with tapegrad"};
  Options o;
  app.add_option("--teacher-hidden", o.teacher_hidden, "teacher's hidden units (two layers)")
      ->capture_default_str()
      ->check(examples::positive);
  app.add_option("--student-hidden", o.student_hidden, "student's hidden units (0: linear)")
      ->capture_default_str()
      ->check(examples::non_negative);
  app.add_option("--input-dropout", o.input_dropout, "teacher's dropout on the input")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 0.99));
  app.add_option("--hidden-dropout", o.hidden_dropout, "teacher's dropout after hidden layers")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 0.99));
  app.add_option("--teacher-epochs", o.teacher_epochs, "teacher's training epochs")
      ->capture_default_str()
      ->check(examples::positive);
  app.add_option("--student-epochs", o.student_epochs, "each student's training epochs")
      ->capture_default_str()
      ->check(examples::positive);
  app.add_option("--temperatures", o.temperatures, "temperatures T of the sweep")
      ->delimiter(',')
      ->capture_default_str()
      ->check(examples::positive);
  app.add_option("--alphas", o.alphas, "weights alpha of the label term in the sweep")
      ->delimiter(',')
      ->capture_default_str()
      ->check(examples::non_negative);
  app.add_option("--seeds", o.seeds, "seeds: one teacher and one set of students each")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--batch", o.batch, "mini-batch size")
      ->capture_default_str()
      ->check(examples::positive);
  app.add_option("--lr", o.lr, "Adam learning rate (teacher and students)")
      ->capture_default_str()
      ->check(examples::positive);
  app.add_option("--validation", o.validation, "training images held out to choose (T, alpha)")
      ->capture_default_str()
      ->check(examples::positive);
  app.add_option("--threads", o.threads, "BLAS threads (0: all cores)")
      ->capture_default_str()
      ->check(examples::non_negative);
  app.add_flag("--retrain-teacher", o.retrain_teacher,
               "train the teachers even when a saved one fits these flags");
  app.add_option("--data", o.data, "folder with MNIST-format files, raw or .gz")
      ->capture_default_str();
  app.add_option("--out", o.out, "output folder")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    return run(o);
  } catch (const tg::Error& e) {
    std::cerr << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "distill: " << e.what() << "\n";
    return 1;
  }
}
