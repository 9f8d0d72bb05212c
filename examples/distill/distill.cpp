// examples/distill/distill.cpp — the teacher and student models, the training epoch for either
// objective, and the evaluation helpers (distill.h says what each does).
#include "distill.h"

#include <algorithm>
#include <vector>

namespace distill {

namespace {
using tg::nn::Activation;
using tg::nn::ActivationLayer;
using tg::nn::Dropout;
using tg::nn::Linear;
using Layers = std::vector<std::shared_ptr<tg::nn::Module>>;
}  // namespace

std::shared_ptr<tg::nn::Sequential> make_teacher(int64_t inputs, int64_t hidden, int64_t classes,
                                                 double input_dropout, double hidden_dropout,
                                                 tg::Generator& init, tg::Generator& masks) {
  return std::make_shared<tg::nn::Sequential>(
      Layers{std::make_shared<Dropout>(input_dropout, masks),
             std::make_shared<Linear>(inputs, hidden, init),
             std::make_shared<ActivationLayer>(Activation::relu),
             std::make_shared<Dropout>(hidden_dropout, masks),
             std::make_shared<Linear>(hidden, hidden, init),
             std::make_shared<ActivationLayer>(Activation::relu),
             std::make_shared<Dropout>(hidden_dropout, masks),
             std::make_shared<Linear>(hidden, classes, init)});
}

std::shared_ptr<tg::nn::Sequential> make_student(int64_t inputs, int64_t hidden, int64_t classes,
                                                 tg::Generator& init) {
  if (hidden == 0)
    return std::make_shared<tg::nn::Sequential>(
        Layers{std::make_shared<Linear>(inputs, classes, init)});
  return std::make_shared<tg::nn::Sequential>(
      Layers{std::make_shared<Linear>(inputs, hidden, init),
             std::make_shared<ActivationLayer>(Activation::relu),
             std::make_shared<Linear>(hidden, classes, init)});
}

double train_epoch(tg::nn::Module& model, tg::optim::Optimizer& optimizer, const tg::Tensor& inputs,
                   const tg::Tensor& labels, const Objective& objective, int64_t batch,
                   tg::Generator& shuffle) {
  const int64_t n = inputs.size(0);
  const bool distilling = objective.teacher_logits.defined();
  tg::check(labels.dim() == 1 && labels.size(0) == n, "distill", "expected ", n,
            " labels, got shape ", labels.shape());
  if (distilling)
    tg::check(objective.teacher_logits.dim() == 2 && objective.teacher_logits.size(0) == n,
              "distill", "expected teacher logits [", n, ", classes], got ",
              objective.teacher_logits.shape());
  // index_select moves floating rows: labels travel as f32 and return to i64 per batch.
  const tg::Tensor label_values = labels.to(tg::DType::f32);
  model.train();
  tg::Tensor order = tg::randperm(n, shuffle);
  double total = 0;
  for (int64_t start = 0; start < n; start += batch) {
    tg::Tensor rows = tg::slice(order, 0, start, std::min(n, start + batch));
    tg::Tensor x = tg::index_select(inputs, 0, rows);
    tg::Tensor y = tg::index_select(label_values, 0, rows).to(tg::DType::i64);
    tg::Tensor logits = model(x);
    tg::Tensor loss = distilling ? tg::distillation_loss(
                                       logits, tg::index_select(objective.teacher_logits, 0, rows),
                                       objective.temperature, objective.alpha, y)
                                 : tg::cross_entropy(logits, y);
    optimizer.zero_grad();
    tg::backward(loss);
    optimizer.step();
    total += loss.item() * static_cast<double>(rows.numel());
  }
  return total / static_cast<double>(n);
}

tg::Tensor predict(tg::nn::Module& model, const tg::Tensor& inputs, int64_t batch) {
  tg::NoGrad no_grad;
  model.eval();
  std::vector<tg::Tensor> parts;
  for (int64_t start = 0; start < inputs.size(0); start += batch)
    parts.push_back(model(tg::slice(inputs, 0, start, std::min(inputs.size(0), start + batch))));
  return tg::concat(parts, 0);
}

int64_t count_errors(const tg::Tensor& logits, const tg::Tensor& labels) {
  tg::check(logits.dim() == 2 && labels.dim() == 1 && logits.size(0) == labels.size(0),
            "count_errors", "expected logits [n, classes] and labels [n], got ", logits.shape(),
            " and ", labels.shape());
  std::vector<double> p = tg::argmax(logits, 1).to_vector(), y = labels.to_vector();
  int64_t errors = 0;
  for (int64_t i = 0; i < labels.size(0); ++i) errors += p[i] != y[i];
  return errors;
}

double mean_kl(const tg::Tensor& teacher_logits, const tg::Tensor& student_logits,
               double temperature) {
  tg::NoGrad no_grad;
  return tg::kl_divergence_logits(teacher_logits, student_logits, -1, temperature,
                                  tg::Reduction::mean)
      .item();
}

}  // namespace distill
