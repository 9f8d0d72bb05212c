// examples/vae — a variational autoencoder on Fashion-MNIST (or any MNIST-format data), the
// model of PyTorch's examples/vae: 784-400-(20, 20) encoder, 20-400-784 decoder, Adam 1e-3.
//
//   ./build/examples/vae/vae                       # 10 epochs, writes out/vae/
//   ./build/examples/vae/vae --epochs 1 --latent 2 --out out/vae2d
//   ./build/examples/vae/vae --resume out/vae/checkpoint.tgc --epochs 20
//
// See README.md in this folder for the flags, the outputs and the math.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <chrono>
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
#include "vae.h"

namespace {

const char* kDefaultData = examples::kFashionMnistDir;

struct Options {
  int epochs = 10;
  int64_t batch = 128;
  int64_t latent = 20;
  double lr = 1e-3;
  uint64_t seed = 1;
  int threads = 0;
  std::string data = kDefaultData;
  std::string out = "out/vae";
  std::string device = "cpu";
  std::string resume;
  bool verbose = false;
};

tg::Device parse_device(const std::string& name) {
  if (name == "cpu") return tg::Device::cpu_device();
  if (name == "cuda") return tg::Device::cuda_device(0);
  if (name.rfind("cuda:", 0) == 0 && name.size() > 5 &&
      std::all_of(name.begin() + 5, name.end(), [](unsigned char c) { return std::isdigit(c); }))
    return tg::Device::cuda_device(std::stoi(name.substr(5)));
  tg::fail("vae", "unknown device '", name, "' (expected cpu, cuda or cuda:N)");
}

// ---------------------------------------------------------------- progress

// A progress bar redrawn in place on a terminal; nothing (only the epoch lines) otherwise.
class ProgressBar {
 public:
  explicit ProgressBar(bool enabled) : enabled_(enabled) {}
  void update(int epoch, int epochs, int64_t done, int64_t total,
              const std::function<double()>& loss) {
    if (!enabled_) return;
    auto now = std::chrono::steady_clock::now();
    if (done < total && now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    const int width = 30;
    int filled = static_cast<int>(width * done / total);
    std::printf("\repoch %d/%d [%s%s] %lld/%lld  loss %.2f ", epoch, epochs,
                std::string(filled, '#').c_str(), std::string(width - filled, '.').c_str(),
                static_cast<long long>(done), static_cast<long long>(total), loss());
    std::fflush(stdout);
  }
  void clear() {
    if (enabled_) std::printf("\r%80s\r", "");
  }

 private:
  bool enabled_;
  std::chrono::steady_clock::time_point last_{};
};

// ---------------------------------------------------------------- pictures

// Pixels [n, 784] in [0, 1] -> [n, 28, 28] for image_grid.
tg::Tensor as_images(const tg::Tensor& pixels) {
  return tg::reshape(pixels.to(tg::Device::cpu_device()), {pixels.size(0), 28, 28});
}

// Rows 0 and 2: test images; rows 1 and 3: their reconstructions (the mean of p(x|z), sigmoid of
// the logits, for z sampled from q(z|x)).
void write_reconstructions(vae::VAE& model, const tg::Tensor& test_images, tg::Generator& noise,
                           const std::string& path) {
  tg::NoGrad no_grad;
  model.eval();
  tg::Tensor x = tg::slice(test_images, 0, 0, 16);
  tg::Tensor reconstructed = tg::sigmoid(model.forward(x, noise).logits);
  model.train();
  tg::Tensor rows = tg::concat({tg::slice(x, 0, 0, 8), tg::slice(reconstructed, 0, 0, 8),
                                tg::slice(x, 0, 8, 16), tg::slice(reconstructed, 0, 8, 16)},
                               0);
  tg::write_png(path, tg::image_grid(as_images(rows), 4, 8, 2, 3));
}

// 64 images decoded from z ~ N(0, I).
void write_samples(vae::VAE& model, tg::Generator& noise, tg::Device device,
                   const std::string& path) {
  tg::NoGrad no_grad;
  tg::Tensor z = tg::randn({64, model.config.latent}, noise, tg::DType::f32, device);
  tg::write_png(path, tg::image_grid(as_images(tg::sigmoid(model.decode(z))), 8, 8, 2, 3));
}

std::vector<std::string> class_names(const std::string& data_dir) {
  std::string lower = data_dir;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  if (lower.find("fashion") != std::string::npos)
    return {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
            "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  std::vector<std::string> names;
  for (int i = 0; i < 10; ++i) names.push_back(std::to_string(i));
  return names;
}

// With a 2-D latent space: the posterior means of the test set, one colour per class.
void write_latent_plot(vae::VAE& model, const tg::data::Dataset& test, const std::string& data_dir,
                       int64_t batch, const std::string& path) {
  tg::NoGrad no_grad;
  model.eval();
  std::vector<std::vector<double>> xs(10), ys(10);
  tg::Tensor pixels = tg::reshape(test.images, {test.size(), -1});
  std::vector<double> labels = test.labels.to_vector();
  for (int64_t start = 0; start < test.size(); start += batch) {
    int64_t end = std::min(test.size(), start + batch);
    tg::Tensor mu, logvar;
    model.encode(tg::slice(pixels, 0, start, end), mu, logvar);
    std::vector<double> m = mu.to_vector();
    for (int64_t i = 0; i < end - start; ++i) {
      int label = static_cast<int>(labels[start + i]) % 10;
      xs[label].push_back(m[2 * i]);
      ys[label].push_back(m[2 * i + 1]);
    }
  }
  model.train();
  std::vector<std::string> names = class_names(data_dir);
  examples::Plot plot("VAE latent means of the test set", "z1", "z2");
  plot.legend_outside();
  for (int c = 0; c < 10; ++c)
    if (!xs[c].empty()) plot.points(names[c], xs[c], ys[c], examples::palette(c));
  plot.save_png(path);
}

// ---------------------------------------------------------------- loss.csv

struct EpochRow {
  int64_t epoch;
  double train_loss, test_loss, train_seconds, test_seconds;
};

// The rows of an earlier run's loss.csv up to `last_epoch` (when resuming), else none.
std::vector<EpochRow> read_history(const std::string& path, int64_t last_epoch) {
  std::vector<EpochRow> rows;
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    EpochRow row;
    char comma;
    std::istringstream fields(line);
    if (fields >> row.epoch >> comma >> row.train_loss >> comma >> row.test_loss >> comma >>
            row.train_seconds >> comma >> row.test_seconds &&
        row.epoch <= last_epoch)
      rows.push_back(row);
  }
  return rows;
}

void write_history(const std::string& path, const std::vector<EpochRow>& rows) {
  std::vector<std::vector<double>> table;
  for (const EpochRow& r : rows)
    table.push_back({static_cast<double>(r.epoch), r.train_loss, r.test_loss, r.train_seconds,
                     r.test_seconds});
  tg::data::write_csv(path, {"epoch", "train_loss", "test_loss", "train_seconds", "test_seconds"},
                      table);
}

// ---------------------------------------------------------------- the run

int run(const Options& options) {
  tg::Device device = parse_device(options.device);
  tg::backend_for(device);  // "no backend for cuda:0: <why>" before any work
  if (options.threads > 0) tg::set_num_threads(options.threads);

  tg::data::Dataset train, test;
  if (!examples::load_fashion_mnist(options.data, device, train, test)) return 1;
  const int64_t pixels = train.images.numel() / train.size();
  tg::check(train.images.size(1) == 28 && train.images.size(2) == 28, "vae",
            "expected 28x28 images, got ", train.images.shape());

  // One seed, separate Philox streams: initialisation, shuffling, training noise, test noise.
  tg::Generator init(options.seed, 0), shuffle(options.seed, 1), noise(options.seed, 2),
      test_noise(options.seed, 3);
  vae::VAE model({pixels, 400, options.latent}, init, device);
  tg::optim::AdamOptions adam_options;
  adam_options.lr = options.lr;
  tg::optim::Adam adam(model.parameters(), adam_options);

  tg::data::DataLoader train_loader(tg::reshape(train.images, {train.size(), pixels}), train.labels,
                                    options.batch, &shuffle);
  tg::data::DataLoader test_loader(tg::reshape(test.images, {test.size(), pixels}), test.labels,
                                   options.batch);

  std::filesystem::create_directories(options.out);
  const std::string checkpoint = options.out + "/checkpoint.tgc";
  tg::TrainingState state{
      &model, &adam, {{"shuffle", &shuffle}, {"noise", &noise}, {"test_noise", &test_noise}}};
  std::vector<EpochRow> history;
  if (!options.resume.empty()) {
    tg::load_checkpoint(options.resume, state);
    history = read_history(options.out + "/loss.csv", state.epoch);
    std::cout << "resumed from " << options.resume << " at epoch " << state.epoch << ", step "
              << state.step << "\n";
    if (state.epoch >= options.epochs)
      std::cout << "nothing left to train: --epochs counts all epochs, resumed ones included "
                   "(ask for more than "
                << state.epoch << "); writing the outputs of the checkpoint\n";
  }

  std::cout << "VAE " << pixels << "-400-" << options.latent << " on " << options.data << " ("
            << train.size() << " train, " << test.size() << " test images), batch "
            << options.batch << ", Adam lr " << options.lr << ", " << device << "\n";
  if (device.is_cpu())
    std::cout << examples::blas_kernels() << ", " << tg::cpu_simd_target() << " kernels, "
              << tg::num_threads() << " thread(s)\n";
  else  // the dataset was loaded straight onto the device: batches never leave it
    std::cout << tg::backend_for(device).description() << ", dataset resident on the device\n";
  if (tg::anomaly_mode())
    std::cout << "anomaly mode on (TAPEGRAD_ANOMALY): every recorded op and backward step checks "
                 "for NaN and infinities\n";
  if (options.verbose)
    std::cout << vae::describe_step(
        model,
        tg::slice(tg::reshape(train.images, {train.size(), pixels}), 0, 0,
                  std::min<int64_t>(options.batch, train.size())),
        noise);
  ProgressBar bar(isatty(STDOUT_FILENO) == 1);
  tg::Backend& backend = tg::backend_for(device);
  // System allocations of the caching allocator after this run's first epoch and after its last:
  // in steady state (epochs 2..N) training allocates nothing new.
  uint64_t allocations_after_first = 0, allocations_after_last = 0;
  int64_t epochs_run = 0;
  for (int64_t epoch = state.epoch + 1; epoch <= options.epochs; ++epoch) {
    vae::EpochResult trained = vae::train_epoch(
        model, adam, train_loader, noise,
        [&](int64_t done, int64_t total, const std::function<double()>& loss) {
          bar.update(static_cast<int>(epoch), options.epochs, done, total, loss);
        });
    vae::EpochResult tested = vae::evaluate(model, test_loader, test_noise);
    bar.clear();
    state.step += train_loader.batch_count();
    state.epoch = epoch;
    history.push_back({epoch, trained.loss_per_sample, tested.loss_per_sample, trained.seconds,
                       tested.seconds});
    std::printf("epoch %lld/%d  train loss %.2f  test loss %.2f  %.2f s (+ test %.2f s)\n",
                static_cast<long long>(epoch), options.epochs, trained.loss_per_sample,
                tested.loss_per_sample, trained.seconds, tested.seconds);
    std::fflush(stdout);
    write_history(options.out + "/loss.csv", history);
    tg::save_checkpoint(checkpoint, state);
    allocations_after_last = backend.memory_stats().system_allocations;
    if (++epochs_run == 1) allocations_after_first = allocations_after_last;
  }

  tg::Generator picture_noise(options.seed, 4);
  write_reconstructions(model, tg::reshape(test.images, {test.size(), pixels}), picture_noise,
                        options.out + "/reconstructions.png");
  write_samples(model, picture_noise, device, options.out + "/samples.png");
  if (options.latent == 2)
    write_latent_plot(model, test, options.data, options.batch, options.out + "/latent.png");
  tg::MemoryStats memory = backend.memory_stats();
  std::printf("wrote %s/{reconstructions.png, samples.png%s, loss.csv, checkpoint.tgc}\n",
              options.out.c_str(), options.latent == 2 ? ", latent.png" : "");
  std::printf("memory: peak %.1f MB in tensors (%.1f MB of it the dataset)",
              memory.peak_bytes_in_use / 1e6,
              (train.images.numel() + test.images.numel()) * 4 / 1e6);
  if (epochs_run >= 2)
    std::printf("; %llu new system allocations in the steady state (epoch%s 2%s)",
                static_cast<unsigned long long>(allocations_after_last - allocations_after_first),
                epochs_run > 2 ? "s" : "",
                epochs_run > 2 ? ("-" + std::to_string(epochs_run)).c_str() : "");
  std::printf("\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "Variational autoencoder on Fashion-MNIST (PyTorch's examples/vae model) with tapegrad"};
  Options o;
  app.add_option("--epochs", o.epochs, "epochs to train (in all, when resuming)")
      ->capture_default_str()
      ->check(examples::non_negative);
  app.add_option("--batch", o.batch, "mini-batch size")
      ->capture_default_str()
      ->check(examples::positive);
  app.add_option("--latent", o.latent, "latent dimensions (2 also plots the latent space)")
      ->capture_default_str()
      ->check(examples::positive);
  app.add_option("--lr", o.lr, "Adam learning rate")
      ->capture_default_str()
      ->check(examples::positive);
  app.add_option("--seed", o.seed, "random seed (initialisation, shuffling, sampling)")
      ->capture_default_str();
  app.add_option("--threads", o.threads, "CPU threads, BLAS and kernels (0: all cores)")
      ->capture_default_str()
      ->check(examples::non_negative);
  app.add_option("--data", o.data, "folder with MNIST-format files, raw or .gz")
      ->capture_default_str();
  app.add_option("--out", o.out, "output folder")->capture_default_str();
  app.add_option("--device", o.device, "cpu, or cuda[:N] in a build with CUDA")
      ->capture_default_str();
  app.add_option("--resume", o.resume, "continue from this checkpoint");
  app.add_flag("--verbose", o.verbose,
               "print the tape of one training step (module paths, saved bytes, gradients) and its "
               "memory report before training");
  app.footer("Environment: TAPEGRAD_ANOMALY=1 turns on anomaly mode: the first op that makes a NaN "
             "or infinity, in forward or backward, stops the run with an error naming it "
             "(slower; on a GPU every op synchronises).");
  CLI11_PARSE(app, argc, argv);
  try {
    return run(o);
  } catch (const tg::Error& e) {
    std::cerr << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "vae: " << e.what() << "\n";
    return 1;
  }
}
