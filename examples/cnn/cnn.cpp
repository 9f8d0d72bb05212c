// examples/cnn/cnn.cpp — the model and its training and test loops (cnn.h).
#include "cnn.h"

#include <chrono>

namespace cnn {

using tg::nn::Activation;
using tg::nn::ActivationLayer;

Net::Net(const Config& c, tg::Generator& init, tg::Generator& dropout, tg::Device device)
    : config(c) {
  const tg::DType f32 = tg::DType::f32;
  append(std::make_shared<tg::nn::Conv2d>(1, c.channels1, 3, init, 1, 1, 1, 1, true, f32, device));
  append(std::make_shared<tg::nn::BatchNorm2d>(c.channels1, 1e-5, 0.1, true, true, f32, device));
  append(std::make_shared<ActivationLayer>(Activation::relu));
  append(std::make_shared<tg::nn::MaxPool2d>(2));
  append(std::make_shared<tg::nn::Conv2d>(c.channels1, c.channels2, 3, init, 1, 1, 1, 1, true, f32,
                                          device));
  append(std::make_shared<tg::nn::BatchNorm2d>(c.channels2, 1e-5, 0.1, true, true, f32, device));
  append(std::make_shared<ActivationLayer>(Activation::relu));
  append(std::make_shared<tg::nn::MaxPool2d>(2));
  append(std::make_shared<tg::nn::Flatten>());
  append(std::make_shared<tg::nn::Dropout>(c.dropout, dropout));
  append(std::make_shared<tg::nn::Linear>(c.channels2 * 7 * 7, c.hidden, init, true, f32, device));
  append(std::make_shared<ActivationLayer>(Activation::relu));
  append(std::make_shared<tg::nn::Dropout>(c.dropout, dropout));
  append(std::make_shared<tg::nn::Linear>(c.hidden, c.classes, init, true, f32, device));
}

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

tg::Tensor as_images(const tg::Tensor& inputs) {
  return tg::reshape(inputs, {inputs.size(0), 1, inputs.size(1), inputs.size(2)});
}

// Adds the batch's (label, prediction) pairs to the confusion matrix; returns how many matched.
int64_t tally(const tg::Tensor& logits, const tg::Tensor& labels, int64_t classes,
              std::vector<int64_t>& confusion) {
  std::vector<double> predicted = tg::argmax(logits, 1).to_vector(), truth = labels.to_vector();
  int64_t correct = 0;
  for (size_t i = 0; i < truth.size(); ++i) {
    int64_t t = static_cast<int64_t>(truth[i]), p = static_cast<int64_t>(predicted[i]);
    correct += t == p;
    if (t >= 0 && t < classes && p >= 0 && p < classes) ++confusion[t * classes + p];
  }
  return correct;
}

}  // namespace

EpochResult train_epoch(Net& model, tg::optim::Optimizer& optimizer, tg::data::DataLoader& loader,
                        const std::function<void(int64_t, int64_t, double)>& progress) {
  auto start = std::chrono::steady_clock::now();
  model.train();
  loader.start_epoch();
  EpochResult result;
  result.confusion.assign(model.config.classes * model.config.classes, 0);
  double loss_sum = 0;
  int64_t seen = 0, correct = 0;
  for (int64_t b = 0; b < loader.batch_count(); ++b) {
    tg::data::Batch batch = loader.batch(b);
    tg::Tensor logits = model(as_images(batch.inputs));
    tg::Tensor loss = tg::cross_entropy(logits, batch.targets);
    optimizer.zero_grad();
    tg::backward(loss);
    optimizer.step();
    // Reading the loss and the predictions synchronises a GPU once per batch; cheap next to a step.
    loss_sum += loss.item() * double(batch.size());
    correct += tally(logits.detach(), batch.targets, model.config.classes, result.confusion);
    seen += batch.size();
    if (progress) progress(seen, loader.sample_count(), loss_sum / double(seen));
  }
  result.loss = loss_sum / double(seen);
  result.accuracy = double(correct) / double(seen);
  result.seconds = seconds_since(start);
  return result;
}

EpochResult evaluate(Net& model, tg::data::DataLoader& loader) {
  auto start = std::chrono::steady_clock::now();
  tg::NoGrad no_grad;
  model.eval();
  loader.start_epoch();
  EpochResult result;
  result.confusion.assign(model.config.classes * model.config.classes, 0);
  double loss_sum = 0;
  int64_t seen = 0, correct = 0;
  for (int64_t b = 0; b < loader.batch_count(); ++b) {
    tg::data::Batch batch = loader.batch(b);
    tg::Tensor logits = model(as_images(batch.inputs));
    loss_sum += tg::cross_entropy(logits, batch.targets).item() * double(batch.size());
    correct += tally(logits, batch.targets, model.config.classes, result.confusion);
    seen += batch.size();
  }
  model.train();
  result.loss = loss_sum / double(seen);
  result.accuracy = double(correct) / double(seen);
  result.seconds = seconds_since(start);
  return result;
}

}  // namespace cnn
