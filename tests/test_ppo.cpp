// tests/test_ppo.cpp — the PPO example's parts: CartPole's dynamics against steps worked out by
// hand, its episode bookkeeping (termination, truncation at 500, self-reset, seeding), GAE on a
// hand-worked trajectory, the clipped surrogate's gradient through the agent (zero exactly where
// the clip blocks), the clamped ratio statistics, the agent's orthogonal initialisation, and a
// short training run (20k steps) that must raise the mean return.
#include <cmath>

#include "../examples/ppo/ppo.h"
#include "file_helpers.h"
#include "helpers.h"

using namespace tg;

TEST_CASE("cartpole_step from rest, pushed right, matches the hand-derived fractions", "[ppo]") {
  // θ = 0: sin θ = 0, cos θ = 1, total mass 1.1, m_p·l = 0.05.
  //   temp = 10 / 1.1 = 100/11
  //   θ̈ = (0 - 100/11) / (0.5·(4/3 - 0.1/1.1)) = -(100/11) / (41/66) = -600/41
  //   ẍ = 100/11 - 0.05·(-600/41)/1.1 = 100/11 + 300/451 = 400/41
  // Euler with τ = 0.02: x = 0, ẋ = 8/41, θ = 0, θ̇ = -12/41.
  ppo::CartPoleState s = ppo::cartpole_step({0, 0, 0, 0}, 1);
  REQUIRE(s[0] == 0.0);
  REQUIRE(s[1] == Approx(8.0 / 41).epsilon(1e-14));
  REQUIRE(s[2] == 0.0);
  REQUIRE(s[3] == Approx(-12.0 / 41).epsilon(1e-14));
  // Pushing left mirrors it.
  ppo::CartPoleState left = ppo::cartpole_step({0, 0, 0, 0}, 0);
  REQUIRE(left[1] == Approx(-8.0 / 41).epsilon(1e-14));
  REQUIRE(left[3] == Approx(12.0 / 41).epsilon(1e-14));
}

TEST_CASE("cartpole_step from a general state uses the old velocities (explicit Euler)", "[ppo]") {
  // s = (0.1, -0.2, 0.05, 0.3), pushed left (F = -10):
  //   temp = (-10 + 0.05·0.3²·sin 0.05) / 1.1                         = -9.0907046306711660
  //   θ̈ = (9.8·sin 0.05 - cos 0.05·temp) / (0.5·(4/3 - 0.1·cos²0.05/1.1)) = 15.401165680307574
  //   ẍ = temp - 0.05·θ̈·cos 0.05 / 1.1                                 = -9.7898827321981300
  //   x = 0.1 + 0.02·(-0.2), ẋ = -0.2 + 0.02·ẍ, θ = 0.05 + 0.02·0.3, θ̇ = 0.3 + 0.02·θ̈
  ppo::CartPoleState s = ppo::cartpole_step({0.1, -0.2, 0.05, 0.3}, 0);
  REQUIRE(s[0] == Approx(0.096).epsilon(1e-14));
  REQUIRE(s[1] == Approx(-0.2 + 0.02 * -9.78988273219813).epsilon(1e-13));
  REQUIRE(s[2] == Approx(0.056).epsilon(1e-14));
  REQUIRE(s[3] == Approx(0.3 + 0.02 * 15.401165680307574).epsilon(1e-13));
}

TEST_CASE("cartpole terminates past 12 degrees or 2.4 and not at the limits", "[ppo]") {
  const double limit = 12 * 2 * M_PI / 360;
  REQUIRE_FALSE(ppo::cartpole_terminated({2.4, 0, limit, 0}));
  REQUIRE_FALSE(ppo::cartpole_terminated({-2.4, 0, -limit, 0}));
  REQUIRE(ppo::cartpole_terminated({2.4000001, 0, 0, 0}));
  REQUIRE(ppo::cartpole_terminated({-2.4000001, 0, 0, 0}));
  REQUIRE(ppo::cartpole_terminated({0, 0, limit + 1e-9, 0}));
  REQUIRE(ppo::cartpole_terminated({0, 0, -limit - 1e-9, 0}));
}

TEST_CASE("CartPoleVec: rewards, termination, self-reset, truncation at 500, seeding", "[ppo]") {
  ppo::CartPoleVec envs(3, 42);
  ppo::CartPoleVec same(3, 42), other(3, 43);
  REQUIRE(envs.observations() == same.observations());
  REQUIRE(envs.observations() != other.observations());
  for (int64_t e = 0; e < 3; ++e)
    for (double v : envs.state(e)) REQUIRE(std::fabs(v) <= 0.05);

  // Env 0 just inside the angle limit, falling: one step terminates it; env 1 at rest.
  envs.set_state(0, {0, 0, 0.2, 2.0});
  envs.set_state(1, {0, 0, 0, 0});
  int64_t actions[3] = {1, 0, 1};
  float rewards[3], dones[3];
  envs.step(actions, rewards, dones);
  REQUIRE(rewards[0] == 1.0f);  // the terminating step earns its reward too
  REQUIRE(dones[0] == 1.0f);
  REQUIRE(envs.terminated()[0]);
  REQUIRE_FALSE(envs.truncated()[0]);
  REQUIRE(dones[1] == 0.0f);
  REQUIRE(envs.episode_returns() == std::vector<double>{1.0});
  REQUIRE(envs.episode_end_steps() == std::vector<int64_t>{1});
  // The observation of env 0 is already the first one of its next episode.
  for (int i = 0; i < 4; ++i) REQUIRE(std::fabs(envs.observations()[i]) <= 0.05f);
  // Env 1's observation is its state in float32.
  REQUIRE(envs.observations()[4 + 1] == static_cast<float>(envs.state(1)[1]));
  REQUIRE(envs.observations()[4 + 1] == static_cast<float>(-8.0 / 41));

  // A pole held upright (the state put back every step) is truncated after 500 steps.
  ppo::CartPoleVec one(1, 7);
  int64_t push = 1;
  for (int step = 1; step <= 500; ++step) {
    one.set_state(0, {0, 0, 0, 0});
    one.step(&push, rewards, dones);
    REQUIRE(dones[0] == (step == 500 ? 1.0f : 0.0f));
  }
  REQUIRE(one.truncated()[0]);
  REQUIRE_FALSE(one.terminated()[0]);
  REQUIRE(one.episode_returns() == std::vector<double>{500.0});
  REQUIRE(one.episode_lengths() == std::vector<int64_t>{500});

  int64_t bad[3] = {0, 2, 1};
  tgtest::require_error([&] { envs.step(bad, rewards, dones); },
                        {"CartPoleVec::step", "action 2", "environment 1"});
}

TEST_CASE("draw_cartpole puts the cart on the track and the pole above it", "[ppo]") {
  std::string upright = ppo::draw_cartpole({0, 0, 0, 0}, {}, 21, 6);
  REQUIRE(upright ==
          "          o          \n"
          "          *          \n"
          "          *          \n"
          "          *          \n"
          "        [==]         \n"
          "|-------------------|\n");
  std::string right = ppo::draw_cartpole({2.4, 0, 0.2, 0}, {}, 21, 6);
  REQUIRE(right.find("[==") != std::string::npos);  // the cart's right end is off the picture
}

TEST_CASE("GAE on a hand-worked trajectory, with an episode end inside it", "[ppo]") {
  // One environment, three steps, γ = 0.9, λ = 0.8. dones[2] = 1: step 1 ended an episode, so
  // step 1 does not bootstrap from step 2, and neither does its advantage.
  //   t = 2: δ = 1 + 0.9·0.2 - 0.3 = 0.88 (bootstraps from next_value 0.2)   Â = 0.88
  //   t = 1: δ = 1 - 0.4 = 0.6                                                Â = 0.6
  //   t = 0: δ = 1 + 0.9·0.4 - 0.5 = 0.86             Â = 0.86 + 0.9·0.8·0.6 = 1.292
  ppo::Advantages a =
      ppo::compute_gae({1, 1, 1}, {0.5f, 0.4f, 0.3f}, {0, 0, 1}, {0.2f}, {0}, 1, 0.9, 0.8);
  REQUIRE(a.advantages[0] == Approx(1.292).epsilon(1e-6));
  REQUIRE(a.advantages[1] == Approx(0.6).epsilon(1e-6));
  REQUIRE(a.advantages[2] == Approx(0.88).epsilon(1e-6));
  REQUIRE(a.returns[0] == Approx(1.792).epsilon(1e-6));
  REQUIRE(a.returns[1] == Approx(1.0).epsilon(1e-6));
  REQUIRE(a.returns[2] == Approx(1.18).epsilon(1e-6));

  // Two environments interleaved time-major ([t * 2 + e]): each gets its own recursion; the
  // second never ends, and next_dones = 1 stops the first one's bootstrap at the end.
  //   env 1: δ1 = 2 + 0.5·1 - 1 = 1.5, Â1 = 1.5; δ0 = 0 + 0.5·1 - 0 = 0.5, Â0 = 0.5 + 0.25·1.5
  ppo::Advantages b =
      ppo::compute_gae({1, 0, 1, 2}, {0, 0, 0, 1}, {0, 0, 0, 0}, {5, 1}, {1, 0}, 2, 0.5, 0.5);
  REQUIRE(b.advantages[2] == Approx(1.0).epsilon(1e-6));         // env 0, t = 1: no bootstrap
  REQUIRE(b.advantages[0] == Approx(1.0 + 0.25).epsilon(1e-6));  // env 0, t = 0: 1 + 0.25·1
  REQUIRE(b.advantages[3] == Approx(1.5).epsilon(1e-6));
  REQUIRE(b.advantages[1] == Approx(0.875).epsilon(1e-6));
  tgtest::require_error(
      [] {
        ppo::compute_gae({1, 1, 1}, {0, 0, 0}, {0, 0, 0}, {0}, {0}, 2, 1, 1);
      },
      {"compute_gae"});
}

namespace {

ppo::Minibatch random_minibatch(int64_t n, uint64_t seed) {
  Generator g(seed);
  ppo::Minibatch b;
  b.observations = uniform({n, 4}, -0.1, 0.1, g);
  b.actions = less(rand({n}, g), full({}, 0.5)).to(DType::i64);
  b.returns = uniform({n}, 0, 10, g);
  b.values = uniform({n}, 0, 10, g);
  return b;
}

// The sum of |grad| over the actor's parameters after backward of the policy loss alone.
double actor_gradient(ppo::Agent& agent, ppo::Minibatch batch, double log_ratio, double advantage) {
  ppo::Config config;
  config.entropy_coef = 0;
  config.value_coef = 0;
  config.normalize_advantages = false;  // keep every advantage's sign
  const int64_t n = batch.observations.size(0);
  {
    NoGrad no_grad;
    Tensor logits = agent.logits(batch.observations);
    Tensor logp = reshape(gather(log_softmax(logits), 1, reshape(batch.actions, {n, 1})), {n});
    batch.logp_old = logp - log_ratio;  // π_new / π_old = e^log_ratio for every sample
  }
  batch.advantages = full({n}, advantage);
  agent.zero_grad();
  backward(ppo::ppo_losses(agent, batch, config).total);
  double total = 0;
  for (const Tensor& p : agent.actor->parameters())
    for (double v : p.grad().to_vector()) total += std::fabs(v);
  return total;
}

}  // namespace

TEST_CASE("the clipped surrogate passes no gradient to the actor where the clip blocks", "[ppo]") {
  Generator init(3);
  ppo::Agent agent(4, 2, 16, init);
  ppo::Minibatch batch = random_minibatch(32, 4);
  // r = e^0.5 = 1.65 > 1.2 with A > 0, and r = e^-0.5 = 0.61 < 0.8 with A < 0: blocked, exactly 0.
  REQUIRE(actor_gradient(agent, batch, 0.5, 1.0) == 0.0);
  REQUIRE(actor_gradient(agent, batch, -0.5, -1.0) == 0.0);
  // The other sides of the clip pass the gradient: r > 1.2 with A < 0, r < 0.8 with A > 0, r = 1.
  REQUIRE(actor_gradient(agent, batch, 0.5, -1.0) > 1e-3);
  REQUIRE(actor_gradient(agent, batch, -0.5, 1.0) > 1e-3);
  REQUIRE(actor_gradient(agent, batch, 0.0, 1.0) > 1e-3);
}

TEST_CASE("ppo_losses: value clipping, entropy and the total, checked term by term", "[ppo]") {
  Generator init(5);
  ppo::Agent agent(4, 2, 8, init);
  ppo::Minibatch batch = random_minibatch(16, 6);
  batch.logp_old = zeros({16}) - std::log(2.0);
  batch.advantages = uniform({16}, -1, 1, init);
  ppo::Config config;
  ppo::Losses losses = ppo::ppo_losses(agent, batch, config);
  NoGrad no_grad;
  std::vector<double> v = agent.value(batch.observations).to_vector(),
                      r = batch.returns.to_vector(), old = batch.values.to_vector();
  double expected_value = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    double clipped = old[i] + std::max(-0.2, std::min(0.2, v[i] - old[i]));
    expected_value += std::max((v[i] - r[i]) * (v[i] - r[i]), (clipped - r[i]) * (clipped - r[i]));
  }
  REQUIRE(losses.value.item() == Approx(0.5 * expected_value / 16).epsilon(1e-5));
  REQUIRE(
      losses.entropy.item() ==
      Approx(entropy_logits(agent.logits(batch.observations), -1, 1.0, Reduction::mean).item()));
  REQUIRE(losses.total.item() ==
          Approx(losses.policy.item() - 0.01 * losses.entropy.item() + 0.5 * losses.value.item())
              .epsilon(1e-5));
}

TEST_CASE("ratio_stats works from the log-ratio clamped at 20, so nothing overflows", "[ppo]") {
  ppo::RatioStats small = ppo::ratio_stats(tensor({0.1, -0.3}), tensor({0.0, 0.0}), 0.2);
  REQUIRE(small.approx_kl ==
          Approx(((std::exp(0.1) - 1 - 0.1) + (std::exp(-0.3) - 1 + 0.3)) / 2).epsilon(1e-6));
  REQUIRE(small.old_approx_kl == Approx(0.1).epsilon(1e-6));
  REQUIRE(small.clip_fraction == 0.5);  // |e^-0.3 - 1| = 0.26 > 0.2, |e^0.1 - 1| = 0.105 is not
  // A log-ratio of 200 in float32: e^200 would be inf; clamped, e^20 - 1 - 20 is finite.
  ppo::RatioStats huge = ppo::ratio_stats(tensor({100.0}), tensor({-100.0}), 0.2);
  REQUIRE(std::isfinite(huge.approx_kl));
  REQUIRE(huge.approx_kl == Approx(std::exp(20.0) - 21).epsilon(1e-6));
  REQUIRE(huge.clip_fraction == 1.0);
}

TEST_CASE("the agent follows CleanRL: names, orthogonal weights with gains √2, 0.01, 1", "[ppo]") {
  Generator init(1);
  ppo::Agent agent(4, 2, 64, init);
  std::vector<std::string> names;
  for (auto& p : agent.named_parameters()) names.push_back(p.first);
  REQUIRE(names == std::vector<std::string>{"critic.0.weight", "critic.0.bias", "critic.2.weight",
                                            "critic.2.bias", "critic.4.weight", "critic.4.bias",
                                            "actor.0.weight", "actor.0.bias", "actor.2.weight",
                                            "actor.2.bias", "actor.4.weight", "actor.4.bias"});
  auto gram = [](const Tensor& w, bool rows) {  // W·Wᵀ or Wᵀ·W
    Tensor m = w.to(DType::f64);
    return rows ? matmul(m, m, false, true) : matmul(m, m, true, false);
  };
  const StateDict state = agent.state_dict();
  auto weight = [&](const std::string& name) { return *state.find(name); };
  // [64, 4]: out ≥ in, orthonormal columns, WᵀW = 2·I.
  Tensor first = gram(weight("actor.0.weight"), false);
  REQUIRE(first.at({0, 0}) == Approx(2.0).epsilon(1e-5));
  REQUIRE(std::fabs(first.at({0, 1})) < 1e-5);
  // [2, 64] with gain 0.01: W·Wᵀ = 1e-4·I.  [1, 64] with gain 1: ‖w‖ = 1.
  Tensor last = gram(weight("actor.4.weight"), true);
  REQUIRE(last.at({1, 1}) == Approx(1e-4).epsilon(1e-4));
  REQUIRE(std::fabs(last.at({0, 1})) < 1e-9);
  REQUIRE(gram(weight("critic.4.weight"), true).item() == Approx(1.0).epsilon(1e-5));
  for (const char* bias : {"actor.0.bias", "critic.2.bias", "actor.4.bias"})
    for (double b : weight(bias).to_vector()) REQUIRE(b == 0.0);
}

TEST_CASE("a short PPO run (20k steps) raises the mean return, and its checkpoint reloads",
          "[ppo]") {
  ppo::Config config;
  config.total_steps = 20480;  // 40 updates of 4 × 128 steps
  ppo::Trainer trainer(config);
  REQUIRE(config.updates() == 40);
  // One BLAS thread, as the example runs: on 64-wide layers a second thread only waits, and on
  // a busy machine that waiting made this run ten times slower in wall time.
  const int threads = num_threads();
  set_num_threads(1);
  while (!trainer.finished()) trainer.update();
  set_num_threads(threads);
  const std::vector<double>& returns = trainer.envs().episode_returns();
  REQUIRE(returns.size() > 100);
  double first = 0;
  for (int i = 0; i < 50; ++i) first += returns[i] / 50;
  INFO("mean of the first 50 episodes " << first << ", of the last 100 " << trainer.mean_return());
  REQUIRE(first < 40);  // a random policy keeps the pole up for ~20 steps
  REQUIRE(trainer.mean_return(100) > 2.5 * first);
  REQUIRE(trainer.global_step() == 20480);

  // The checkpoint's model entries rebuild the same policy (what --eval does).
  tgtest::TempDir dir;
  save_checkpoint(dir.file("ppo.tgc"), trainer.training_state());
  Generator other(99);
  ppo::Agent restored(4, 2, 64, other);
  restored.load_state_dict(read_state_dict(dir.file("ppo.tgc")).with_prefix("model."));
  Tensor observations = tensor({0.01, 0.2, -0.03, -0.1, 0, 0, 0, 0}, {2, 4});
  NoGrad no_grad;
  tgtest::require_values(restored.logits(observations),
                         trainer.agent().logits(observations).to_vector(), 0);
}

TEST_CASE("ppo::Config rejects settings that make no sense", "[ppo]") {
  ppo::Config config;
  config.minibatches = 3;  // 512 does not split into 3
  tgtest::require_error([&] { ppo::Trainer trainer(config); }, {"ppo", "3 equal mini-batches"});
  config = ppo::Config();
  config.total_steps = 100;
  tgtest::require_error([&] { ppo::Trainer trainer(config); }, {"ppo", "fewer than one batch"});
}
