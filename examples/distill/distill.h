// examples/distill/distill.h — knowledge distillation with temperature (Hinton, Vinyals & Dean,
// "Distilling the knowledge in a neural network", 2015): a large teacher trained on labels, then
// a small student trained on the teacher's softened outputs as well as the labels.
//
// The student's loss on a batch, tapegrad's distillation_loss:
//
//   loss = T²·KL(softmax(teacher / T) ‖ softmax(student / T)) + α·CE(student, labels)
//
// averaged over the batch. Hinton et al. mix the two terms convexly, (1 - α)·soft + α·hard; here
// the soft term keeps its full weight and α only weighs the labels, so α = 0.1 means "mostly the
// teacher". The T² keeps the soft term's gradient of the same size as T changes.
#pragma once

#include <cstdint>
#include <memory>

#include "tapegrad/tapegrad.h"

namespace distill {

// The teacher: in-hidden-hidden-classes with ReLU, dropout on the input and after each hidden
// layer (the dropout nets of Srivastava et al. 2014 that Hinton et al. distil). Module names as
// PyTorch's nn.Sequential of the same layers: "1.weight", "4.weight", "7.weight".
std::shared_ptr<tg::nn::Sequential> make_teacher(int64_t inputs, int64_t hidden, int64_t classes,
                                                 double input_dropout, double hidden_dropout,
                                                 tg::Generator& init, tg::Generator& masks);
// The student: in-hidden-classes with ReLU ("0.weight", "2.weight"), or in-classes (a linear
// model) when hidden is 0.
std::shared_ptr<tg::nn::Sequential> make_student(int64_t inputs, int64_t hidden, int64_t classes,
                                                 tg::Generator& init);

// What a model learns from: the labels alone (cross-entropy), or with teacher_logits defined,
// distillation_loss at `temperature` with `alpha` on the label term.
struct Objective {
  tg::Tensor teacher_logits;  // [n, classes], the teacher's logits for the training inputs
  double temperature = 1.0;
  double alpha = 0.0;
};

// One epoch over (inputs [n, features], labels [n] i64) in a fresh order drawn from `shuffle`,
// in mini-batches of `batch`, one optimizer step each; the model is put in training mode. Returns
// the mean loss per sample.
double train_epoch(tg::nn::Module& model, tg::optim::Optimizer& optimizer, const tg::Tensor& inputs,
                   const tg::Tensor& labels, const Objective& objective, int64_t batch,
                   tg::Generator& shuffle);

// The model's logits for every input, [n, classes], in evaluation mode (no dropout), without the
// tape; the model is left in evaluation mode.
tg::Tensor predict(tg::nn::Module& model, const tg::Tensor& inputs, int64_t batch = 1000);

// How many rows' largest logit is not the label.
int64_t count_errors(const tg::Tensor& logits, const tg::Tensor& labels);

// Mean over rows of KL(softmax(teacher / T) ‖ softmax(student / T)).
double mean_kl(const tg::Tensor& teacher_logits, const tg::Tensor& student_logits,
               double temperature);

}  // namespace distill
