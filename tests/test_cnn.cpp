// tests/test_cnn.cpp — the CNN example (examples/cnn) end to end on a tiny synthetic dataset of
// 28×28 pictures made by the test (never the real data): it learns, training and evaluation in
// steady state allocate nothing new from the system (conv2d's columns, batch norm's statistics,
// the pools' indices all come back from the caching allocator), and evaluation neither trains
// nor moves the running statistics.
#include <algorithm>
#include <cmath>

#include "../examples/cnn/cnn.h"
#include "helpers.h"

using namespace tg;

namespace {

constexpr int64_t kSide = 28;

// Three kinds of picture — horizontal bars, vertical bars, a centred square — with random
// brightness and a little noise, pixels in [0, 1]; labels 0, 1, 2 in turn.
struct Pictures {
  Tensor images, labels;
};
Pictures make_pictures(int64_t n, uint64_t seed) {
  Generator g(seed);
  std::vector<double> u = rand({n * (kSide * kSide + 2)}, g, DType::f64).to_vector();
  std::vector<double> pixels(n * kSide * kSide);
  std::vector<int64_t> labels(n);
  size_t k = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int kind = static_cast<int>(i % 3);
    const double brightness = 0.6 + 0.4 * u[k++];
    const int phase = static_cast<int>(u[k++] * 4);
    for (int64_t y = 0; y < kSide; ++y)
      for (int64_t x = 0; x < kSide; ++x) {
        const bool on = kind == 0 ? (y + phase) % 4 < 2
                      : kind == 1 ? (x + phase) % 4 < 2
                                  : (x >= 7 && x < 21 && y >= 7 && y < 21);
        pixels[(i * kSide + y) * kSide + x] = std::min((on ? brightness : 0.0) + 0.1 * u[k++], 1.0);
      }
    labels[i] = kind;
  }
  return {tensor(pixels, {n, kSide, kSide}), index_tensor(labels, {n})};
}

cnn::Config small_config() {
  cnn::Config c;
  c.channels1 = 4;
  c.channels2 = 8;
  c.hidden = 16;
  c.classes = 3;
  c.dropout = 0.1;
  return c;
}

struct Run {
  Generator init, dropout, shuffle;
  cnn::Net model;
  optim::Adam adam;
  Pictures train, test;
  data::DataLoader train_loader, test_loader;

  explicit Run(uint64_t seed)
      : init(seed, 0), dropout(seed, 1), shuffle(seed, 2),
        model(small_config(), init, dropout),
        adam(model.parameters(), adam_options()),
        train(make_pictures(96, seed + 10)), test(make_pictures(48, seed + 20)),
        train_loader(train.images, train.labels, 16, &shuffle),
        test_loader(test.images, test.labels, 16) {}

  static optim::AdamOptions adam_options() {
    optim::AdamOptions o;
    o.lr = 3e-3;
    return o;
  }
  cnn::EpochResult epoch() { return cnn::train_epoch(model, adam, train_loader); }
};

int64_t total(const std::vector<int64_t>& counts) {
  int64_t sum = 0;
  for (int64_t c : counts) sum += c;
  return sum;
}

}  // namespace

TEST_CASE("CNN: the loss falls and it tells three kinds of picture apart", "[cnn]") {
  Run run(5);
  const cnn::EpochResult untrained = cnn::evaluate(run.model, run.test_loader);
  std::vector<double> losses;
  for (int epoch = 0; epoch < 6; ++epoch) losses.push_back(run.epoch().loss);
  const cnn::EpochResult trained = cnn::evaluate(run.model, run.test_loader);
  INFO("train losses " << losses.front() << " -> " << losses.back() << ", test accuracy "
                       << untrained.accuracy << " -> " << trained.accuracy);
  REQUIRE(losses.back() < 0.5 * losses.front());
  REQUIRE(trained.loss < untrained.loss);
  REQUIRE(trained.accuracy >= 0.9);
}

TEST_CASE("CNN: training and evaluation in steady state allocate nothing from the system",
          "[cnn]") {
  Run run(6);
  run.epoch();  // the first epoch and test pass meet every shape once
  cnn::evaluate(run.model, run.test_loader);
  const uint64_t before = backend_for(Device::cpu_device()).memory_stats().system_allocations;
  run.epoch();
  cnn::evaluate(run.model, run.test_loader);
  run.epoch();
  REQUIRE(backend_for(Device::cpu_device()).memory_stats().system_allocations == before);
}

TEST_CASE("CNN: evaluation counts every test picture once and leaves the model as it was",
          "[cnn]") {
  Run run(7);
  run.epoch();
  auto values = [&run] {  // every parameter and buffer (running statistics, batch counts)
    std::vector<std::vector<double>> v;
    const StateDict state = run.model.state_dict();
    for (const auto& entry : state) v.push_back(entry.second.to_vector());
    return v;
  };
  const auto before = values();
  const cnn::EpochResult result = cnn::evaluate(run.model, run.test_loader);
  REQUIRE(total(result.confusion) == 48);
  int64_t diagonal = 0;
  for (int64_t c = 0; c < 3; ++c) diagonal += result.confusion[c * 3 + c];
  REQUIRE(result.accuracy == Approx(double(diagonal) / 48.0));
  REQUIRE(values() == before);
  REQUIRE(run.model.is_training());  // evaluate switches back to train mode
}
