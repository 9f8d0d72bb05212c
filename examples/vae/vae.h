// examples/vae/vae.h — the variational autoencoder of PyTorch's examples/vae, and one epoch of
// training and of evaluation. main.cpp adds the command line and the pictures; the tests
// (tests/test_vae.cpp) train it on a tiny synthetic dataset.
//
//   encoder  x [B, 784] -> h = relu(fc1 x) [B, 400] -> mu = fc21 h, logvar = fc22 h   [B, 20]
//   sample   z = mu + e^(logvar/2) * eps,  eps ~ N(0, I)                             [B, 20]
//   decoder  z -> relu(fc3 z) [B, 400] -> logits = fc4 · [B, 784]    (x̂ = sigmoid(logits))
//   loss     Σ BCE-with-logits(logits, x) + Σ KL(N(mu, e^logvar) ‖ N(0, I))    (summed over B)
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "tapegrad/tapegrad.h"

namespace vae {

struct Config {
  int64_t input = 784;  // pixels per image
  int64_t hidden = 400;
  int64_t latent = 20;
};

class VAE : public tg::nn::Module {
 public:
  VAE(const Config& config, tg::Generator& init, tg::Device device = tg::Device::cpu_device());

  struct Output {
    tg::Tensor logits;  // [B, input]: the decoder's Bernoulli logits
    tg::Tensor mu;      // [B, latent]
    tg::Tensor logvar;  // [B, latent]
  };
  // x [B, input] in [0, 1] -> (mu, logvar)
  void encode(const tg::Tensor& x, tg::Tensor& mu, tg::Tensor& logvar);
  // z [B, latent] -> logits [B, input]
  tg::Tensor decode(const tg::Tensor& z);
  // encode, sample z with noise from `noise`, decode.
  Output forward(const tg::Tensor& x, tg::Generator& noise);
  using tg::nn::Module::forward;  // the single-input form, which a VAE does not have
  std::string type_name() const override { return "VAE"; }

  Config config;
  std::shared_ptr<tg::nn::Linear> fc1, fc21, fc22, fc3, fc4;
};

// Σ BCE-with-logits(logits, x) + Σ KL(N(mu, e^logvar) ‖ N(0, I)): the negative ELBO of the batch
// (a 0-d tensor); divide by the batch size for the loss per sample.
tg::Tensor loss(const VAE::Output& output, const tg::Tensor& x);

struct EpochResult {
  double loss_per_sample = 0;
  double seconds = 0;
  int64_t samples = 0;
};

// Called after each batch with (batches done, batches in the epoch, a reader of the loss per sample
// so far). The loss is summed on the device; reading it waits for the device, so call the reader
// only when displaying it.
using Progress = std::function<void(int64_t done, int64_t total,
                                    const std::function<double()>& loss_per_sample)>;

// One pass over `loader` (start_epoch() is called here): zero_grad, forward, backward, step.
EpochResult train_epoch(VAE& model, tg::optim::Optimizer& optimizer, tg::data::DataLoader& loader,
                        tg::Generator& noise, const Progress& progress = nullptr);
// The loss per sample over `loader` in eval mode without recording, sampling z as in training
// (PyTorch's example does the same).
EpochResult evaluate(VAE& model, tg::data::DataLoader& loader, tg::Generator& noise);

// One training step on x as the tape sees it (vae --verbose): the recorded forward pass and loss
// with the parameters' module paths (fc1.weight, ...), the bytes each entry saved, then the
// same after the backward (gradient shapes, root) and its peak memory. Draws from a copy of
// `noise` and forgets the gradients, so training goes on as without it.
std::string describe_step(VAE& model, const tg::Tensor& x, const tg::Generator& noise);

}  // namespace vae
