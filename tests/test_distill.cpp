// tests/test_distill.cpp — the distillation example's parts on synthetic data (never the real
// dataset): distilling from a fixed teacher lowers the KL to it, a label-only run lowers the
// errors, the models have the documented layers and names, and the helpers count and check.
#include <cmath>

#include "../examples/distill/distill.h"
#include "helpers.h"

using namespace tg;

namespace {

// 512 points in 12 dimensions, labelled by a random linear map into 4 classes.
struct Synthetic {
  Tensor x, labels;
  explicit Synthetic(uint64_t seed) {
    Generator g(seed);
    x = randn({512, 12}, g);
    Tensor projection = randn({12, 4}, g);
    labels = argmax(matmul(x, projection), 1);
  }
};

optim::AdamOptions adam_lr(double lr) {
  optim::AdamOptions options;
  options.lr = lr;
  return options;
}

}  // namespace

TEST_CASE("distilling from a fixed teacher lowers the student's KL to it", "[distill]") {
  Synthetic data(1);
  Generator teacher_init(2), masks(3), student_init(4), shuffle(5);
  // An untrained teacher is as good a target as any: its softened outputs are what is matched.
  auto teacher = distill::make_teacher(12, 32, 4, 0.0, 0.0, teacher_init, masks);
  Tensor teacher_logits = mul(distill::predict(*teacher, data.x), 10.0);  // a confident teacher
  auto student = distill::make_student(12, 16, 4, student_init);
  optim::Adam adam(student->parameters(), adam_lr(1e-2));
  const double temperature = 2.0;
  double before = distill::mean_kl(teacher_logits, distill::predict(*student, data.x), temperature);
  distill::Objective objective{teacher_logits, temperature, 0.0};  // soft targets only
  double first_loss = 0, last_loss = 0;
  for (int epoch = 0; epoch < 15; ++epoch) {
    double loss = distill::train_epoch(*student, adam, data.x, data.labels, objective, 64, shuffle);
    if (epoch == 0) first_loss = loss;
    last_loss = loss;
  }
  double after = distill::mean_kl(teacher_logits, distill::predict(*student, data.x), temperature);
  INFO("KL(teacher ‖ student) at T = 2: " << before << " -> " << after);
  REQUIRE(before > 0.05);
  REQUIRE(after < 0.25 * before);
  // With α = 0 the loss is exactly T²·KL: the epoch means fell too.
  REQUIRE(last_loss < first_loss);
  REQUIRE(student->is_training() == false);  // predict leaves it in eval mode
}

TEST_CASE("a label-only student learns the synthetic classes; α mixes the label term in",
          "[distill]") {
  Synthetic data(6);
  Generator init(7), shuffle(8);
  auto student = distill::make_student(12, 16, 4, init);
  optim::Adam adam(student->parameters(), adam_lr(1e-2));
  int64_t before = distill::count_errors(distill::predict(*student, data.x), data.labels);
  for (int epoch = 0; epoch < 15; ++epoch)
    distill::train_epoch(*student, adam, data.x, data.labels, {}, 64, shuffle);
  int64_t after = distill::count_errors(distill::predict(*student, data.x), data.labels);
  INFO("training errors " << before << " -> " << after << " of 512");
  REQUIRE(before > 200);  // about 3/4 wrong at chance
  REQUIRE(after < 60);

  // The loss train_epoch minimises with a teacher is distillation_loss: check one batch's value
  // against its definition, T²·KL + α·CE.
  Tensor teacher_logits = randn({512, 4}, init);
  Tensor logits = (*student)(data.x);
  double t = 3.0, alpha = 0.5;
  double expected = t * t * distill::mean_kl(teacher_logits, logits, t) +
                    alpha * cross_entropy(logits, data.labels).item();
  REQUIRE(distillation_loss(logits, teacher_logits, t, alpha, data.labels).item() ==
          Approx(expected).epsilon(1e-5));
}

TEST_CASE("the teacher has dropout layers that act only in training mode", "[distill]") {
  Generator init(9), masks(10);
  auto teacher = distill::make_teacher(784, 1200, 10, 0.2, 0.5, init, masks);
  std::vector<std::string> names;
  for (auto& p : teacher->named_parameters()) names.push_back(p.first);
  REQUIRE(names == std::vector<std::string>{"1.weight", "1.bias", "4.weight", "4.bias", "7.weight",
                                            "7.bias"});
  REQUIRE(teacher->children()[0].second->type_name() == "Dropout(p = 0.2)");
  REQUIRE(teacher->children()[3].second->type_name() == "Dropout(p = 0.5)");
  Tensor x = rand({4, 784}, init);
  teacher->train();
  Tensor a = (*teacher)(x), b = (*teacher)(x);  // two different masks
  REQUIRE(a.to_vector() != b.to_vector());
  teacher->eval();
  tgtest::require_values((*teacher)(x), (*teacher)(x).to_vector(), 0);
  auto linear = distill::make_student(784, 0, 10, init);
  REQUIRE(linear->size() == 1);
}

TEST_CASE("count_errors and train_epoch check their inputs", "[distill]") {
  Tensor logits = tensor({0.1, 0.9, 2.0, -1.0, 0.0, 0.5}, {3, 2});
  REQUIRE(distill::count_errors(logits, index_tensor({1, 0, 0})) == 1);
  tgtest::require_error(
      [&] {
        distill::count_errors(logits, index_tensor({1, 0}));
      },
      {"count_errors", "[3, 2]", "[2]"});
  Generator init(1), shuffle(2);
  auto student = distill::make_student(2, 0, 2, init);
  optim::Adam adam(student->parameters());
  distill::Objective wrong{zeros({2, 2}), 2.0, 0.5};  // 2 rows of teacher logits for 3 inputs
  tgtest::require_error(
      [&] {
        distill::train_epoch(*student, adam, logits, index_tensor({1, 0, 0}), wrong, 2, shuffle);
      },
      {"distill", "teacher logits"});
}
