// examples/vae/vae.cpp — the model, its loss, and the training and evaluation loops.
#include "vae.h"

#include <chrono>

namespace vae {

using tg::Tensor;

VAE::VAE(const Config& c, tg::Generator& init, tg::Device device) : config(c) {
  auto layer = [&](int64_t in, int64_t out) {
    return std::make_shared<tg::nn::Linear>(in, out, init, true, tg::DType::f32, device);
  };
  // Registered in the reference's order, so parameters are drawn (and named) as in PyTorch.
  fc1 = register_module("fc1", layer(c.input, c.hidden));
  fc21 = register_module("fc21", layer(c.hidden, c.latent));
  fc22 = register_module("fc22", layer(c.hidden, c.latent));
  fc3 = register_module("fc3", layer(c.latent, c.hidden));
  fc4 = register_module("fc4", layer(c.hidden, c.input));
}

void VAE::encode(const Tensor& x, Tensor& mu, Tensor& logvar) {
  Tensor h = tg::relu((*fc1)(x));
  mu = (*fc21)(h);
  logvar = (*fc22)(h);
}

Tensor VAE::decode(const Tensor& z) { return (*fc4)(tg::relu((*fc3)(z))); }

VAE::Output VAE::forward(const Tensor& x, tg::Generator& noise) {
  Output out;
  encode(x, out.mu, out.logvar);
  out.logits = decode(tg::reparameterize(out.mu, out.logvar, noise));
  return out;
}

Tensor loss(const VAE::Output& output, const Tensor& x) {
  return tg::bce_with_logits(output.logits, x, tg::Reduction::sum) +
         tg::gaussian_kl_standard(output.mu, output.logvar, tg::Reduction::sum);
}

namespace {
double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}
}  // namespace

EpochResult train_epoch(VAE& model, tg::optim::Optimizer& optimizer, tg::data::DataLoader& loader,
                        tg::Generator& noise, const Progress& progress) {
  auto start = std::chrono::steady_clock::now();
  model.train();
  loader.start_epoch();
  EpochResult result;
  Tensor total = tg::zeros({}, tg::DType::f64, model.fc1->weight.device());
  auto loss_per_sample = [&] { return total.item() / static_cast<double>(result.samples); };
  for (int64_t b = 0; b < loader.batch_count(); ++b) {
    Tensor x = loader.batch(b).inputs;
    optimizer.zero_grad();
    Tensor batch_loss = loss(model.forward(x, noise), x);
    tg::backward(batch_loss);
    optimizer.step();
    {
      tg::NoGrad no_grad;  // summed on the device: no host synchronisation per step
      total = tg::add(total, batch_loss.detach().to(tg::DType::f64));
    }
    result.samples += x.size(0);
    if (progress) progress(b + 1, loader.batch_count(), loss_per_sample);
  }
  result.loss_per_sample = loss_per_sample();
  result.seconds = seconds_since(start);
  return result;
}

std::string describe_step(VAE& model, const Tensor& x, const tg::Generator& noise) {
  tg::Generator step_noise = noise;
  model.train();
  tg::tape().clear();
  Tensor batch_loss = loss(model.forward(x, step_noise), x);
  std::string text = "forward pass and loss, as recorded:\n" + tg::tape().to_string() +
                     tg::tape().memory_report().to_string();
  tg::tape().track_memory(true);
  tg::backward(batch_loss, {false, true});  // retained, to show the gradients on the tape
  tg::tape().track_memory(false);
  text += "after backward:\n" + tg::tape().to_string() + tg::tape().memory_report().to_string();
  tg::tape().clear();
  model.zero_grad();
  return text;
}

EpochResult evaluate(VAE& model, tg::data::DataLoader& loader, tg::Generator& noise) {
  auto start = std::chrono::steady_clock::now();
  tg::NoGrad no_grad;
  model.eval();
  loader.start_epoch();
  EpochResult result;
  Tensor total = tg::zeros({}, tg::DType::f64, model.fc1->weight.device());
  for (int64_t b = 0; b < loader.batch_count(); ++b) {
    Tensor x = loader.batch(b).inputs;
    total = tg::add(total, loss(model.forward(x, noise), x).to(tg::DType::f64));
    result.samples += x.size(0);
  }
  model.train();
  result.loss_per_sample = total.item() / static_cast<double>(result.samples);
  result.seconds = seconds_since(start);
  return result;
}

}  // namespace vae
