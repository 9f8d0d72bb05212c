// tests/test_vae.cpp — the VAE example end to end on a tiny synthetic dataset written by the test
// as IDX files (never the real data): the loss falls, training in steady state allocates nothing
// new, and resuming from a checkpoint reproduces an uninterrupted run bit for bit.
#include <cstring>

#include "../examples/vae/vae.h"
#include "file_helpers.h"
#include "helpers.h"

using namespace tg;
using tgtest::TempDir;

namespace {

constexpr int64_t kSide = 8;  // 8×8 images

// Three kinds of picture — horizontal bars, vertical bars, a centred square — with random
// brightness and a little noise, written as an MNIST-layout dataset.
void write_dataset(const TempDir& dir, const std::string& prefix, int64_t n, uint64_t seed) {
  Generator g(seed);
  std::vector<double> u = rand({n * (kSide * kSide + 2)}, g, DType::f64).to_vector();
  std::vector<double> pixels(n * kSide * kSide), labels(n);
  size_t k = 0;
  for (int64_t i = 0; i < n; ++i) {
    int kind = static_cast<int>(i % 3);
    double brightness = 0.6 + 0.4 * u[k++];
    int phase = static_cast<int>(u[k++] * 2);
    for (int64_t y = 0; y < kSide; ++y)
      for (int64_t x = 0; x < kSide; ++x) {
        bool on = kind == 0 ? (y + phase) % 2 == 0
                : kind == 1 ? (x + phase) % 2 == 0
                            : (x >= 2 && x < 6 && y >= 2 && y < 6);
        double v = (on ? brightness : 0.0) + 0.1 * u[k++];
        pixels[(i * kSide + y) * kSide + x] = std::round(255 * std::min(v, 1.0));
      }
    labels[i] = kind;
  }
  data::write_idx(dir.file(prefix + "-images-idx3-ubyte.gz"), tensor(pixels, {n, kSide, kSide}));
  data::write_idx(dir.file(prefix + "-labels-idx1-ubyte"), tensor(labels, {n}));
}

struct Run {
  Generator init, shuffle, noise, test_noise;
  vae::VAE model;
  optim::Adam adam;
  data::DataLoader train_loader, test_loader;

  Run(const data::Dataset& train, const data::Dataset& test, uint64_t seed)
      : init(seed, 0), shuffle(seed, 1), noise(seed, 2), test_noise(seed, 3),
        model({kSide * kSide, 32, 4}, init),
        adam(model.parameters(), adam_options()),
        train_loader(reshape(train.images, {train.size(), -1}), train.labels, 16, &shuffle),
        test_loader(reshape(test.images, {test.size(), -1}), test.labels, 16) {}

  static optim::AdamOptions adam_options() {
    optim::AdamOptions o;
    o.lr = 3e-3;
    return o;
  }
  TrainingState state() {
    return TrainingState{
        &model, &adam, {{"shuffle", &shuffle}, {"noise", &noise}, {"test_noise", &test_noise}}};
  }
  vae::EpochResult epoch() { return vae::train_epoch(model, adam, train_loader, noise); }
};

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() &&
         std::memcmp(a.raw_data(), b.raw_data(), a.numel() * dtype_size(a.dtype())) == 0;
}

struct Data {
  TempDir dir;
  data::Dataset train, test;
  Data() {
    write_dataset(dir, "train", 200, 1);
    write_dataset(dir, "t10k", 60, 2);
    train = data::load_mnist(dir.path(), "train");
    test = data::load_mnist(dir.path(), "test");
  }
};

}  // namespace

TEST_CASE("VAE: the training and test losses fall", "[vae]") {
  Data data;
  Run run(data.train, data.test, 7);
  double untrained = vae::evaluate(run.model, run.test_loader, run.test_noise).loss_per_sample;
  std::vector<double> train_losses;
  for (int epoch = 0; epoch < 8; ++epoch) train_losses.push_back(run.epoch().loss_per_sample);
  double trained = vae::evaluate(run.model, run.test_loader, run.test_noise).loss_per_sample;
  INFO("untrained test loss " << untrained << ", trained " << trained);
  REQUIRE(train_losses.back() < 0.85 * train_losses.front());
  REQUIRE(trained < 0.85 * untrained);
  // A pixel's BCE is at least its entropy, so the loss cannot fall below 0; it must stay finite.
  REQUIRE(std::isfinite(trained));
  REQUIRE(trained > 0);
}

TEST_CASE("VAE: training in steady state allocates nothing from the system", "[vae]") {
  Data data;
  Run run(data.train, data.test, 8);
  run.epoch();  // the first epoch meets every shape once
  uint64_t before = backend_for(Device::cpu_device()).memory_stats().system_allocations;
  run.epoch();
  run.epoch();
  REQUIRE(backend_for(Device::cpu_device()).memory_stats().system_allocations == before);
}

TEST_CASE("VAE: resuming from a checkpoint is bit-identical to an uninterrupted run", "[vae]") {
  Data data;
  TempDir out;
  // Uninterrupted: four epochs.
  Run straight(data.train, data.test, 9);
  std::vector<double> straight_losses;
  for (int epoch = 0; epoch < 4; ++epoch)
    straight_losses.push_back(straight.epoch().loss_per_sample);
  double straight_test =
      vae::evaluate(straight.model, straight.test_loader, straight.test_noise).loss_per_sample;

  // Interrupted: two epochs, a checkpoint, and a fresh process-like start (other seed, so
  // everything that matters must come from the checkpoint) that trains two more.
  {
    Run first(data.train, data.test, 9);
    first.epoch();
    first.epoch();
    TrainingState state = first.state();
    state.epoch = 2;
    state.step = 2 * first.train_loader.batch_count();
    save_checkpoint(out.file("vae.tgc"), state);
  }
  Run resumed(data.train, data.test, 12345);
  TrainingState state = resumed.state();
  load_checkpoint(out.file("vae.tgc"), state);
  REQUIRE(state.epoch == 2);
  std::vector<double> resumed_losses;
  for (int epoch = 0; epoch < 2; ++epoch) resumed_losses.push_back(resumed.epoch().loss_per_sample);
  double resumed_test =
      vae::evaluate(resumed.model, resumed.test_loader, resumed.test_noise).loss_per_sample;

  REQUIRE(resumed_losses[0] == straight_losses[2]);  // exact equality, not approximate
  REQUIRE(resumed_losses[1] == straight_losses[3]);
  REQUIRE(resumed_test == straight_test);
  auto a = straight.model.named_parameters(), b = resumed.model.named_parameters();
  for (size_t i = 0; i < a.size(); ++i) {
    INFO(a[i].first);
    REQUIRE(same_bits(a[i].second, b[i].second));
  }
  StateDict adam_a = straight.adam.state_dict(), adam_b = resumed.adam.state_dict();
  REQUIRE(adam_a.size() == adam_b.size());
  for (size_t i = 0; i < adam_a.size(); ++i) {
    INFO(adam_a.entries()[i].first);
    REQUIRE(same_bits(adam_a.entries()[i].second, adam_b.entries()[i].second));
  }
}

TEST_CASE("VAE: the tape of a training step shows its module paths and memory", "[vae]") {
  tg::Generator init(1), noise(2), data(3);
  vae::VAE model({16, 8, 2}, init);
  tg::Tensor x = tg::rand({4, 16}, data);
  tg::Tensor before = model.fc1->weight.detach().clone();
  const std::string text = vae::describe_step(model, x, noise);
  INFO(text);
  for (const char* path : {"leaf fc1.weight", "leaf fc1.bias", "leaf fc21.weight", "leaf fc22.bias",
                           "leaf fc3.weight", "leaf fc4.weight", "leaf fc4.bias"})
    REQUIRE(text.find(path) != std::string::npos);
  REQUIRE(text.find("linear(const [4, 16] f32, #0, #1)") != std::string::npos);
  REQUIRE(text.find("saved for backward") != std::string::npos);
  REQUIRE(text.find("<- root") != std::string::npos);
  REQUIRE(text.find("grad [8, 16]") != std::string::npos);  // fc1.weight's gradient
  REQUIRE(text.find("peak") != std::string::npos);
  // Nothing changed for training: no gradients kept, parameters untouched, tape empty.
  REQUIRE_FALSE(model.fc1->weight.grad().defined());
  tgtest::require_values(model.fc1->weight, before.to_vector(), 0);
  REQUIRE(tg::tape().size() == 0);
}
