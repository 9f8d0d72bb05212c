// examples/cnn/cnn.h — the CNN of examples/cnn: two conv-BN-ReLU-pool blocks, dropout and a
// linear head, for 28×28 one-channel images (Fashion-MNIST), with its training and test loops.
// bench/cnn_vs_pytorch.py builds the same model in PyTorch.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "tapegrad/tapegrad.h"

namespace cnn {

struct Config {
  int64_t channels1 = 32, channels2 = 64;  // of the two conv blocks (3×3, padding 1)
  int64_t hidden = 128;                    // of the linear head's hidden layer
  int64_t classes = 10;
  double dropout = 0.25;
};

// [N, 1, 28, 28] -> conv 3×3 (32) -> BN -> ReLU -> max pool 2 -> [N, 32, 14, 14]
//                -> conv 3×3 (64) -> BN -> ReLU -> max pool 2 -> [N, 64, 7, 7]
//                -> flatten -> dropout -> linear (128) -> ReLU -> dropout -> linear (10) logits
// Parameter names follow the PyTorch nn.Sequential of the same layers ("0.weight", "1.running_mean").
class Net : public tg::nn::Sequential {
 public:
  Net(const Config& config, tg::Generator& init, tg::Generator& dropout,
      tg::Device device = tg::Device::cpu_device());
  std::string type_name() const override { return "cnn::Net"; }
  Config config;
};

struct EpochResult {
  double loss = 0;       // mean cross-entropy per sample
  double accuracy = 0;   // fraction classified correctly
  double seconds = 0;
  std::vector<int64_t> confusion;  // [classes × classes], row = true class, column = predicted
};

// One epoch of Adam over `loader` (which shuffles), images [b, 28, 28] reshaped to [b, 1, 28, 28].
// `progress(done, total, running_loss)` is called after every batch.
EpochResult train_epoch(Net& model, tg::optim::Optimizer& optimizer, tg::data::DataLoader& loader,
                        const std::function<void(int64_t, int64_t, double)>& progress = nullptr);
// The test loop: eval mode (running statistics, no dropout), no tape; fills the confusion matrix.
EpochResult evaluate(Net& model, tg::data::DataLoader& loader);

}  // namespace cnn
