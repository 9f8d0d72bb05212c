// src/ops/losses.cpp — training losses: binary and categorical cross-entropy, nll, mse,
// knowledge distillation and PPO's clipped surrogate. Pointwise ones are a single fused kernel
// that also reduces; softmax-based ones go through the cross_entropy / kl_logits row kernels.
// docs/math.md derives every formula.
#include <cmath>
#include <vector>

#include "fused_helpers.h"
#include "../kernels/fused_math.h"

namespace tg {

// The public constant (functional.h) and the kernels' clamp are one number.
static_assert(ppo_max_log_ratio == kernels::kPpoMaxLogRatio);

using detail::AxisView;
using detail::backend_of;
using detail::pointwise_op;
using Pointwise = Backend::Pointwise;

namespace {

// The class axis, PyTorch's convention: 1 for [N, C, ...], 0 for a single [C] distribution.
int class_axis(const Tensor& logits) { return logits.dim() >= 2 ? 1 : 0; }

// Class labels, checked against the logits, with PyTorch's ignore_index taken out.
struct ClassLabels {
  Tensor values;  // the labels, with ignored positions set to class 0 so kernels can index them
  Tensor keep;    // 1 where a label counts, 0 where it is ignore_index; undefined if none is
};

// Checks labels against logits: i64, the logits' shape without the class axis, every value in
// [0, C) or equal to ignore_index (on a GPU the range is reported at the next synchronisation).
ClassLabels check_labels(const char* op, const Tensor& logits, const Tensor& labels,
                         int64_t ignore_index) {
  check(labels.defined() && labels.dtype() == DType::i64, op,
        "class labels must be an i64 tensor (tg::index_tensor)");
  check(labels.device() == logits.device(), op, "labels are on ", labels.device(), ", logits on ",
        logits.device());
  int axis = class_axis(logits);
  Shape expected = detail::reduced_shape(logits.shape(), axis, false);
  check(labels.shape() == expected, op, "labels of shape ", labels.shape(), " do not fit logits ",
        logits.shape(), ": expected labels of shape ", expected, " (the logits without the class axis ",
        axis, ")");
  // -1: not counted without a synchronisation (a GPU), so some labels may be ignored.
  int64_t ignored =
      detail::check_index_range(op, labels, logits.shape()[axis], "label", ignore_index);
  if (ignored == 0) return {labels, Tensor()};
  // Ignored positions get class 0 and a keep weight of 0, built where the labels live (no host
  // read). Labels that passed the check are < C or ignore_index, so f64 holds them exactly.
  NoGrad no_grad;
  Tensor as_real = labels.to(DType::f64);
  Tensor is_ignored =
      equal(as_real, scalar(static_cast<double>(ignore_index), DType::f64, labels.device()));
  Tensor zero = zeros({}, DType::f64, labels.device());
  return {where(is_ignored, zero, as_real).to(DType::i64), sub(1.0, is_ignored).to(logits.dtype())};
}

// Reduces per-position losses of which some may be ignored: those are zeroed (where, not a
// product, so an inf or NaN computed at a dummy label cannot leak), and mean divides by the
// positions that count (0/0 = NaN when none does, as in PyTorch).
Tensor reduce_kept(const Tensor& loss, const ClassLabels& labels, Reduction reduction,
                   int64_t batch) {
  if (!labels.keep.defined()) return detail::reduce_values(loss, reduction, batch);
  Tensor masked = where(labels.keep, loss, zeros({}, loss.dtype(), loss.device()));
  if (reduction != Reduction::mean) return detail::reduce_values(masked, reduction, batch);
  return div(sum(masked), sum(labels.keep));
}

int64_t batch_size(const Tensor& t) { return t.dim() > 1 ? t.shape()[0] : 1; }

// PpoClip's gradient (src/kernels/fused_math.h) in engine ops, for a recorded sweep. Which term
// min picks, and whether the log-ratio is below its clamp, are piecewise constant: masks.
Tensor ppo_clip_partial(const std::vector<Tensor>& in, int k, double eps) {
  const Tensor &advantage = in[2];
  Tensor ratio = exp(clamp(sub(in[0], in[1]), -INFINITY, kernels::kPpoMaxLogRatio));
  Tensor clipped = clamp(ratio, 1 - eps, 1 + eps);
  Tensor unclipped, live;
  {
    NoGrad no_grad;
    unclipped = less_equal(mul(ratio, advantage), mul(clipped, advantage));
    Tensor limit = full({}, kernels::kPpoMaxLogRatio, ratio.dtype(), ratio.device());
    live = less(sub(in[0], in[1]), limit);
  }
  if (k == 2) return neg(where(unclipped, ratio, clipped));
  Tensor slope = detail::masked(mul(unclipped, live), neg(mul(ratio, advantage)));
  return k == 0 ? slope : neg(slope);
}

}  // namespace

// cross_entropy's gradients in engine ops, for a recorded sweep (create_graph). With P the
// softmax and g the gradient of each sample's loss, along the class axis:
//   labels:         grad_x = g·(P - ε/C) - (1-ε)·(g scattered at the labels)      (Σ t' = 1)
//   probabilities:  grad_x = g·(P·Σ t' - t'),  t' = (1-ε)·t + ε/C
//                   grad_t = -g·(1-ε)·log P
static void cross_entropy_recorded(const Tensor& grad, const Tensor& logits,
                                   const Tensor& target, bool labels, double smoothing,
                                   const detail::Tempered& t, Gradients& g) {
  const double classes = static_cast<double>(logits.shape()[t.axis]);
  Tensor per_sample = detail::along_axis(grad, logits.shape(), t.axis);
  if (g.wants(0)) {
    Tensor probs = detail::softmax_op(detail::SoftmaxKind::softmax, logits, t);
    if (labels) {
      Tensor index = detail::along_axis(target, logits.shape(), t.axis);
      Tensor at_labels = detail::scatter_along(per_sample, t.axis, index, logits.shape(), false);
      Tensor spread = smoothing == 0 ? probs : sub(probs, smoothing / classes);
      g.add(0, sub(mul(per_sample, spread), mul(at_labels, 1 - smoothing)));
    } else {
      Tensor smoothed = add(mul(target, 1 - smoothing), smoothing / classes);
      Tensor total = sum(smoothed, t.axis, true);
      g.add(0, mul(per_sample, sub(mul(probs, total), smoothed)));
    }
  }
  if (g.wants(1)) {
    Tensor log_probs = detail::softmax_op(detail::SoftmaxKind::log_softmax, logits, t);
    g.add(1, mul(mul(per_sample, log_probs), -(1 - smoothing)));
  }
}

// ℓ = max(x,0) - x·y + log(1 + e^-|x|)      grad_x = grad·(σ(x) - y)      grad_y = -grad·x
Tensor bce_with_logits(const Tensor& logits, const Tensor& targets, Reduction reduction) {
  detail::check_floating_group("bce_with_logits", {logits, targets});
  detail::check_same_shape("bce_with_logits", logits, targets, "logits", "targets");
  return pointwise_op("bce_with_logits", Pointwise::bce_with_logits, {logits, targets}, reduction,
                      [](const std::vector<Tensor>& in, int k, double) {
                        return k == 0 ? sub(sigmoid(in[0]), in[1]) : neg(in[0]);
                      });
}


// ℓ = -Σ_j t'_j·log softmax(x)_j, t' = (1-ε)·t + ε/C, t = onehot(label) or given probabilities
// grad_x = grad·(softmax(x)·Σ t' - t')        grad_t = -grad·(1-ε)·log softmax(x)
Tensor cross_entropy(const Tensor& logits, const Tensor& target, double label_smoothing,
                     Reduction reduction, int64_t ignore_index) {
  const char* name = "cross_entropy";
  detail::check_floating(name, logits);
  check(logits.dim() >= 1, name, "expected logits of shape [C] or [N, C, ...], got ", logits.shape());
  check(label_smoothing >= 0 && label_smoothing <= 1, name,
        "label_smoothing must lie in [0, 1], got ", label_smoothing);
  check(target.defined(), name, "the target tensor is undefined");
  const bool labels = target.dtype() == DType::i64;
  ClassLabels checked;
  if (labels) {
    checked = check_labels(name, logits, target, ignore_index);
  } else {
    detail::check_compatible(name, logits, target);
    detail::check_same_shape(name, logits, target, "logits", "probability target");
  }
  detail::Tempered t = detail::tempered_layout(name, logits, class_axis(logits), 1.0);
  // No classes (probability targets [N, 0]; labels cannot be in range then): each sample's loss
  // is the empty sum 0, and the kernels have nothing to compute, forward or backward.
  const bool no_classes = t.layout.n == 0;
  Shape loss_shape = detail::reduced_shape(logits.shape(), t.axis, false);
  Tensor loss = no_classes ? zeros(loss_shape, logits.dtype(), logits.device())
                           : empty(loss_shape, logits.dtype(), logits.device());
  Tensor stats = empty({t.layout.outer * t.layout.inner * 2}, logits.dtype(), logits.device());
  const Tensor class_target = labels ? checked.values : target;
  const int64_t* label_data =
      labels ? static_cast<const int64_t*>(class_target.raw_data()) : nullptr;
  if (!no_classes)
    backend_of(logits).cross_entropy(logits.dtype(), logits.raw_data(), label_data,
                                     labels ? nullptr : target.raw_data(), label_smoothing,
                                     loss.raw_data(), stats.raw_data(), t.layout);
  Tensor soft_target = labels ? Tensor() : target;
  if (is_recording(logits, soft_target))
    record(with_scalars(name, label_smoothing), loss, {logits, soft_target},
           save(logits, class_target, stats),
           [labels, label_smoothing, t = t.layout_only(), no_classes](
               const Tensor& grad, Gradients& g, const Tensor& logits, const Tensor& target,
               const Tensor& stats) {
             if (grad_enabled() && (needs_grad(grad) || needs_grad(logits) ||
                                    (!labels && needs_grad(target))))
               return cross_entropy_recorded(grad, logits, target, labels, label_smoothing, t, g);
             Tensor grad_logits, grad_target;
             if (g.wants(0)) grad_logits = empty(logits.shape(), logits.dtype(), logits.device());
             if (g.wants(1)) grad_target = empty(target.shape(), target.dtype(), target.device());
             if (!no_classes) backend_of(logits).cross_entropy_backward(
                 logits.dtype(), grad.raw_data(), logits.raw_data(),
                 labels ? static_cast<const int64_t*>(target.raw_data()) : nullptr,
                 labels ? nullptr : target.raw_data(),
                 label_smoothing, stats.raw_data(),
                 detail::data_or_null(grad_logits),
                 detail::data_or_null(grad_target), t.layout);
             g.add(0, grad_logits);
             g.add(1, grad_target);
           });
  return reduce_kept(loss, checked, reduction, batch_size(logits));
}

// ℓ = -log_probs[label]          grad_log_probs = -grad at the label, 0 elsewhere
Tensor nll(const Tensor& log_probs, const Tensor& class_labels, Reduction reduction,
           int64_t ignore_index) {
  const char* name = "nll";
  detail::check_floating(name, log_probs);
  check(log_probs.dim() >= 1, name, "expected log-probabilities of shape [C] or [N, C, ...], got ",
        log_probs.shape());
  ClassLabels checked = check_labels(name, log_probs, class_labels, ignore_index);
  const Tensor labels = checked.values;
  const int axis = class_axis(log_probs);
  AxisView view(log_probs.shape(), axis);
  Tensor picked = empty(labels.shape(), log_probs.dtype(), log_probs.device());
  backend_of(log_probs).gather(log_probs.dtype(), log_probs.raw_data(),
                               static_cast<const int64_t*>(labels.raw_data()), picked.raw_data(),
                               view.outer, view.n, 1, view.inner, false);
  Tensor loss = detail::unary_kernel(name, UnaryOp::neg, picked);
  if (is_recording(log_probs)) {
    Shape shape = log_probs.shape();
    Tensor index = detail::along_axis(labels, shape, axis);
    record(name, loss, {log_probs}, save(index),
           [shape, axis](const Tensor& grad, Gradients& g, const Tensor& index) {
      g.add(0, detail::scatter_along(detail::along_axis(neg(grad), shape, axis), axis, index,
                                     shape, false));
    });
  }
  return reduce_kept(loss, checked, reduction, batch_size(log_probs));
}

// ℓ = (a - b)²                   grad_a = grad·2(a - b) = -grad_b
Tensor mse(const Tensor& input, const Tensor& target, Reduction reduction) {
  detail::check_floating_group("mse", {input, target});
  detail::check_same_shape("mse", input, target, "input", "target");
  return pointwise_op("mse", Pointwise::squared_error, {input, target}, reduction,
                      [](const std::vector<Tensor>& in, int k, double) {
                        return mul(sub(in[0], in[1]), k == 0 ? 2.0 : -2.0);
                      });
}

// ℓ = T²·KL(softmax(teacher/T) ‖ softmax(student/T)) / N  +  α·CE(student, labels)
// The T² keeps the soft term's gradient O(1) as T grows (docs/math.md §distillation_loss).
Tensor distillation_loss(const Tensor& student_logits, const Tensor& teacher_logits,
                         double temperature, double alpha, const Tensor& labels) {
  const char* name = "distillation_loss";
  detail::check_floating_group(name, {student_logits, teacher_logits});
  check(student_logits.dim() == 2, name, "expected logits of shape [N, C], got ",
        student_logits.shape());
  detail::check_temperature(name, temperature);
  Tensor soft = mul(kl_divergence_logits(teacher_logits, student_logits, -1, temperature,
                                         Reduction::batchmean),
                    temperature * temperature);
  if (alpha == 0 && !labels.defined()) return soft;
  check(labels.defined(), name, "alpha = ", alpha,
        " weighs a cross-entropy term, but no labels were given");
  return add(soft, mul(cross_entropy(student_logits, labels), alpha));
}

// ℓ = -min(r·A, clamp(r, 1-ε, 1+ε)·A), r = e^(log π_new - log π_old)
// grad_log π_new = -grad·r·A where min picks r·A, else 0     grad_log π_old = -grad_log π_new
// grad_A = -grad·(the ratio min picked)
Tensor ppo_clip_loss(const Tensor& logp_new, const Tensor& logp_old, const Tensor& advantages,
                     double clip_epsilon, Reduction reduction) {
  const char* name = "ppo_clip_loss";
  detail::check_floating_group(name, {logp_new, logp_old, advantages});
  detail::check_same_shape(name, logp_new, logp_old, "logp_new", "logp_old");
  detail::check_same_shape(name, logp_new, advantages, "logp_new", "advantages");
  check(clip_epsilon >= 0 && clip_epsilon < 1, name, "clip epsilon must lie in [0, 1), got ",
        clip_epsilon);
  return pointwise_op(name, Pointwise::ppo_clip, {logp_new, logp_old, advantages}, reduction,
                      ppo_clip_partial, clip_epsilon);
}

}  // namespace tg
