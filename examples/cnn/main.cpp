// examples/cnn — a small convolutional network on Fashion-MNIST (or any MNIST-format data): two
// conv-BN-ReLU-pool blocks, dropout and a linear head (cnn.h), Adam 1e-3, batch 128.
//
//   ./build/examples/cnn/cnn                        # 5 epochs, writes out/cnn/
//   ./build/examples/cnn/cnn --epochs 1 --out out/cnn1
//   ./build/examples/cnn/cnn --resume out/cnn/checkpoint.tgc --epochs 8
//
// See README.md in this folder for the flags, the outputs and the figures.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "blas_kernels.h"
#include "cli_checks.h"
#include "fashion_mnist.h"
#include "plot.h"
#include "cnn.h"

namespace {

const char* kDefaultData = examples::kFashionMnistDir;

struct Options {
  int epochs = 5;
  int64_t batch = 128;
  double lr = 1e-3;
  double dropout = 0.25;
  uint64_t seed = 1;
  int threads = 0;
  int64_t train_limit = 0;
  std::string data = kDefaultData;
  std::string out = "out/cnn";
  std::string device = "cpu";
  std::string resume;
};

tg::Device parse_device(const std::string& name) {
  if (name == "cpu") return tg::Device::cpu_device();
  if (name == "cuda") return tg::Device::cuda_device(0);
  if (name.rfind("cuda:", 0) == 0 && name.size() > 5 &&
      std::all_of(name.begin() + 5, name.end(), [](unsigned char c) { return std::isdigit(c); }))
    return tg::Device::cuda_device(std::stoi(name.substr(5)));
  tg::fail("cnn", "unknown device '", name, "' (expected cpu, cuda or cuda:N)");
}

// A progress bar redrawn in place on a terminal; nothing (only the epoch lines) otherwise.
class ProgressBar {
 public:
  explicit ProgressBar(bool enabled) : enabled_(enabled) {}
  void update(int epoch, int epochs, int64_t done, int64_t total, double loss) {
    if (!enabled_) return;
    auto now = std::chrono::steady_clock::now();
    if (done < total && now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    const int width = 30;
    int filled = static_cast<int>(width * done / total);
    std::printf("\repoch %d/%d [%s%s] %lld/%lld  loss %.4f ", epoch, epochs,
                std::string(filled, '#').c_str(), std::string(width - filled, '.').c_str(),
                static_cast<long long>(done), static_cast<long long>(total), loss);
    std::fflush(stdout);
  }
  void clear() {
    if (enabled_) std::printf("\r%80s\r", "");
  }

 private:
  bool enabled_;
  std::chrono::steady_clock::time_point last_{};
};

std::vector<std::string> class_names(const std::string& data_dir, int64_t classes) {
  std::string lower = data_dir;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  if (lower.find("fashion") != std::string::npos && classes == 10)
    return {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
            "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  std::vector<std::string> names;
  for (int64_t i = 0; i < classes; ++i) names.push_back(std::to_string(i));
  return names;
}

// ---------------------------------------------------------------- the confusion matrix

// confusion.csv: one row per true class, one column per predicted class (counts).
void write_confusion_csv(const std::string& path, const std::vector<int64_t>& confusion,
                         int64_t classes) {
  std::vector<std::string> columns = {"true_class"};
  for (int64_t p = 0; p < classes; ++p) columns.push_back("predicted_" + std::to_string(p));
  std::vector<std::vector<double>> rows;
  for (int64_t t = 0; t < classes; ++t) {
    std::vector<double> row = {double(t)};
    for (int64_t p = 0; p < classes; ++p) row.push_back(double(confusion[t * classes + p]));
    rows.push_back(row);
  }
  tg::data::write_csv(path, columns, rows);
}

std::string percent(double fraction) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f%%", 100 * fraction);
  return text;
}

// confusion.png: a cell per (true row, predicted column) with its count, white for none of the
// row's test images to dark blue for all of them; the diagonal holds the correct ones.
void write_confusion_png(const std::string& path, const std::vector<int64_t>& confusion,
                         const std::vector<std::string>& names, double accuracy) {
  const size_t classes = names.size();
  examples::Heatmap map;
  map.title = "confusion matrix on the test set (accuracy " + percent(accuracy) + ")";
  map.x_label = "predicted class";
  map.y_label = "true class";
  map.row_names = map.column_names = names;
  for (size_t t = 0; t < classes; ++t) {
    int64_t row_total = 0;
    for (size_t p = 0; p < classes; ++p) row_total += confusion[t * classes + p];
    for (size_t p = 0; p < classes; ++p) {
      const int64_t count = confusion[t * classes + p];
      // the square root, so that the few percent of a confusion stand out
      map.shade.push_back(row_total ? std::sqrt(double(count) / double(row_total)) : 0.0);
      map.text.push_back(std::to_string(count));
    }
  }
  map.save_png(path);
}

// ---------------------------------------------------------------- history.csv

struct EpochRow {
  int64_t epoch;
  double train_loss, train_accuracy, test_loss, test_accuracy, train_seconds, test_seconds;
};

std::vector<EpochRow> read_history(const std::string& path, int64_t last_epoch) {
  std::vector<EpochRow> rows;
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    EpochRow r;
    char c;
    std::istringstream f(line);
    if (f >> r.epoch >> c >> r.train_loss >> c >> r.train_accuracy >> c >> r.test_loss >> c >>
            r.test_accuracy >> c >> r.train_seconds >> c >> r.test_seconds &&
        r.epoch <= last_epoch)
      rows.push_back(r);
  }
  return rows;
}

void write_history(const std::string& path, const std::vector<EpochRow>& rows) {
  std::vector<std::vector<double>> table;
  for (const EpochRow& r : rows)
    table.push_back({double(r.epoch), r.train_loss, r.train_accuracy, r.test_loss,
                     r.test_accuracy, r.train_seconds, r.test_seconds});
  tg::data::write_csv(path,
                      {"epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy",
                       "train_seconds", "test_seconds"},
                      table);
}

// ---------------------------------------------------------------- the run

int run(const Options& options) {
  tg::Device device = parse_device(options.device);
  tg::backend_for(device);  // "no backend for cuda:0: <why>" before any work
  if (options.threads > 0) tg::set_num_threads(options.threads);

  tg::data::Dataset train, test;
  if (!examples::load_fashion_mnist(options.data, device, train, test)) return 1;
  tg::check(train.images.size(1) == 28 && train.images.size(2) == 28, "cnn",
            "expected 28x28 images, got ", train.images.shape());
  if (options.train_limit > 0 && options.train_limit < train.size()) {
    train.images = tg::slice(train.images, 0, 0, options.train_limit);
    train.labels = tg::slice(train.labels, 0, 0, options.train_limit);
  }

  // One seed, separate Philox streams: initialisation, shuffling, dropout masks.
  tg::Generator init(options.seed, 0), shuffle(options.seed, 1), masks(options.seed, 2);
  cnn::Config config;
  config.dropout = options.dropout;
  cnn::Net model(config, init, masks, device);
  tg::optim::AdamOptions adam_options;
  adam_options.lr = options.lr;
  tg::optim::Adam adam(model.parameters(), adam_options);

  tg::data::DataLoader train_loader(train.images, train.labels, options.batch, &shuffle);
  tg::data::DataLoader test_loader(test.images, test.labels, options.batch);

  std::filesystem::create_directories(options.out);
  const std::string checkpoint = options.out + "/checkpoint.tgc";
  tg::TrainingState state{&model, &adam, {{"shuffle", &shuffle}, {"dropout", &masks}}};
  std::vector<EpochRow> history;
  if (!options.resume.empty()) {
    tg::load_checkpoint(options.resume, state);
    history = read_history(options.out + "/history.csv", state.epoch);
    std::cout << "resumed from " << options.resume << " at epoch " << state.epoch << ", step "
              << state.step << "\n";
    if (state.epoch >= options.epochs)
      std::cout << "nothing left to train: --epochs counts all epochs, resumed ones included "
                   "(ask for more than "
                << state.epoch << "); writing the outputs of the checkpoint\n";
  }

  std::cout << "CNN on " << options.data << " (" << train.size() << " train, " << test.size()
            << " test images), batch " << options.batch << ", Adam lr " << options.lr
            << ", dropout " << options.dropout << ", " << device << "\n";
  std::cout << model.to_string();
  if (device.is_cpu())
    std::cout << examples::blas_kernels() << ", " << tg::num_threads() << " thread(s)\n";
  else
    std::cout << tg::backend_for(device).description() << ", dataset resident on the device\n";
  ProgressBar bar(isatty(STDOUT_FILENO) == 1);
  tg::Backend& backend = tg::backend_for(device);
  uint64_t allocations_after_first = 0, allocations_after_last = 0;
  int64_t epochs_run = 0;
  for (int64_t epoch = state.epoch + 1; epoch <= options.epochs; ++epoch) {
    cnn::EpochResult trained =
        cnn::train_epoch(model, adam, train_loader, [&](int64_t done, int64_t total, double loss) {
          bar.update(static_cast<int>(epoch), options.epochs, done, total, loss);
        });
    cnn::EpochResult tested = cnn::evaluate(model, test_loader);
    bar.clear();
    state.step += train_loader.batch_count();
    state.epoch = epoch;
    history.push_back({epoch, trained.loss, trained.accuracy, tested.loss, tested.accuracy,
                       trained.seconds, tested.seconds});
    std::printf("epoch %lld/%d  train loss %.4f acc %.2f%%  test loss %.4f acc %.2f%%  %.1f s "
                "(+ test %.1f s)\n",
                static_cast<long long>(epoch), options.epochs, trained.loss,
                100 * trained.accuracy, tested.loss, 100 * tested.accuracy, trained.seconds,
                tested.seconds);
    std::fflush(stdout);
    write_history(options.out + "/history.csv", history);
    tg::save_checkpoint(checkpoint, state);
    allocations_after_last = backend.memory_stats().system_allocations;
    if (++epochs_run == 1) allocations_after_first = allocations_after_last;
  }

  cnn::EpochResult final_test = cnn::evaluate(model, test_loader);
  write_confusion_csv(options.out + "/confusion.csv", final_test.confusion, config.classes);
  std::vector<std::string> names = class_names(options.data, config.classes);
  write_confusion_png(options.out + "/confusion.png", final_test.confusion, names,
                      final_test.accuracy);
  std::printf("test accuracy %.2f%%; per class:", 100 * final_test.accuracy);
  for (int64_t t = 0; t < config.classes; ++t) {
    int64_t total = 0;
    for (int64_t p = 0; p < config.classes; ++p) total += final_test.confusion[t * config.classes + p];
    std::printf("%s %s %.1f%%", t ? "," : "", names[t].c_str(),
                total ? 100.0 * double(final_test.confusion[t * config.classes + t]) / double(total)
                      : 0.0);
  }
  // history.csv and the checkpoint are written after each epoch: none when no epoch ran (a
  // --resume that had already reached --epochs).
  std::printf("\nwrote %s/{confusion.png, confusion.csv%s}\n", options.out.c_str(),
              epochs_run > 0 ? ", history.csv, checkpoint.tgc" : "");
  tg::MemoryStats memory = backend.memory_stats();
  std::printf("memory: peak %.1f MB in tensors (%.1f MB of it the dataset)",
              memory.peak_bytes_in_use / 1e6,
              (train.images.numel() + test.images.numel()) * 4 / 1e6);
  if (epochs_run >= 2)
    std::printf("; %llu new system allocations in the steady state (epochs 2-%lld)",
                static_cast<unsigned long long>(allocations_after_last - allocations_after_first),
                static_cast<long long>(epochs_run));
  std::printf("\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"A small CNN (two conv-BN-ReLU-pool blocks, dropout, linear head) on Fashion-MNIST "
               "with tapegrad"};
  Options o;
  app.add_option("--epochs", o.epochs, "epochs to train (in all, when resuming)")
      ->capture_default_str()
      ->check(examples::non_negative);
  app.add_option("--batch", o.batch, "mini-batch size")
      ->capture_default_str()
      ->check(examples::positive);
  app.add_option("--lr", o.lr, "Adam learning rate")->capture_default_str()->check(examples::positive);
  app.add_option("--dropout", o.dropout, "drop probability of both dropout layers")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--seed", o.seed, "random seed (initialisation, shuffling, dropout)")
      ->capture_default_str();
  app.add_option("--threads", o.threads, "BLAS threads (0: all cores)")
      ->capture_default_str()
      ->check(examples::non_negative);
  app.add_option("--train-limit", o.train_limit, "train on the first N images only (0: all)")
      ->capture_default_str()
      ->check(examples::non_negative);
  app.add_option("--data", o.data, "folder with MNIST-format files, raw or .gz")
      ->capture_default_str();
  app.add_option("--out", o.out, "output folder")->capture_default_str();
  app.add_option("--device", o.device, "cpu, or cuda[:N] in a build with CUDA")
      ->capture_default_str();
  app.add_option("--resume", o.resume, "continue from this checkpoint");
  CLI11_PARSE(app, argc, argv);
  try {
    return run(o);
  } catch (const tg::Error& e) {
    std::cerr << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "cnn: " << e.what() << "\n";
    return 1;
  }
}
