// examples/ppo/ppo.h — proximal policy optimisation on CartPole, the algorithm of CleanRL's
// ppo.py (Huang et al., "The 37 implementation details of PPO") with its defaults.
//
// One update: run the current policy for `rollout_steps` steps in each of `envs` environments,
// estimate advantages with GAE(γ, λ), then `update_epochs` passes over that batch in
// `minibatches` shuffled mini-batches, each one Adam step on
//
//   loss = ppo_clip_loss(log π_new, log π_old, Â)  -  c_ent·H(π)  +  c_v·½·mean(max((V - R)²,
//          (V_old + clamp(V - V_old, -ε, ε) - R)²))
//
// with Â the mini-batch's advantages normalised to mean 0 and standard deviation 1, R = Â_raw +
// V_old the GAE returns, and the gradients' global norm clipped to `max_grad_norm`. The learning
// rate falls linearly to 0 over the run. docs/math.md derives GAE; the surrogate is
// `ppo_clip_loss` (docs/math.md §ppo_clip_loss).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "cartpole.h"
#include "tapegrad/tapegrad.h"

namespace ppo {

// CleanRL ppo.py's defaults for CartPole-v1.
struct Config {
  uint64_t seed = 1;
  int64_t total_steps = 500000;  // environment steps over all environments
  int64_t envs = 4;
  int64_t rollout_steps = 128;   // per environment and update
  double lr = 2.5e-4;
  bool anneal_lr = true;         // linearly from lr to 0 over the updates
  double adam_eps = 1e-5;
  double gamma = 0.99;
  double gae_lambda = 0.95;
  int64_t minibatches = 4;
  int64_t update_epochs = 4;
  bool normalize_advantages = true;
  double clip_coef = 0.2;        // ε, for the ratio and for the value clip
  bool clip_value_loss = true;
  double entropy_coef = 0.01;
  double value_coef = 0.5;
  double max_grad_norm = 0.5;
  double target_kl = 0;          // > 0: an update stops its epochs once approx KL exceeds it
  int64_t hidden = 64;

  int64_t batch_size() const { return envs * rollout_steps; }
  int64_t minibatch_size() const { return batch_size() / minibatches; }
  int64_t updates() const { return total_steps / batch_size(); }  // CleanRL's num_updates
  // Throws a tg::Error naming the first setting that makes no sense.
  void check() const;
};

// Separate actor and critic MLPs, obs-64-tanh-64-tanh-{actions, 1}, with CleanRL's layer_init:
// orthogonal weights with gain √2 (last layers: 0.01 for the actor, 1 for the critic), zero
// biases. Parameters are named as in CleanRL's Agent ("actor.0.weight", "critic.4.bias").
class Agent : public tg::nn::Module {
 public:
  Agent(int64_t observations, int64_t actions, int64_t hidden, tg::Generator& init);
  tg::Tensor logits(const tg::Tensor& observations);  // [B, obs] -> [B, actions]
  tg::Tensor value(const tg::Tensor& observations);   // [B, obs] -> [B]
  std::string type_name() const override { return "Agent"; }

  std::shared_ptr<tg::nn::Sequential> critic, actor;
};

// Generalised advantage estimation over a rollout stored time-major ([t * envs + e]), as in
// CleanRL: dones[t] says the episode ended just before step t's observation (so step t starts a
// new one), next_values / next_dones describe the observation after the last step.
//   δ_t = r_t + γ·V_{t+1}·(1 - done_{t+1}) - V_t,   Â_t = δ_t + γλ·(1 - done_{t+1})·Â_{t+1}
//   returns R_t = Â_t + V_t
// An episode cut off by truncation is not bootstrapped either (CleanRL's choice with gym's done).
struct Advantages {
  std::vector<float> advantages, returns;
};
Advantages compute_gae(const std::vector<float>& rewards, const std::vector<float>& values,
                       const std::vector<float>& dones, const std::vector<float>& next_values,
                       const std::vector<float>& next_dones, int64_t envs, double gamma,
                       double lambda);

// Diagnostics of the policy change, from the log-ratio log π_new - log π_old, clamped at 20 as
// ppo_clip_loss clamps it (so e^ratio never overflows in float32):
//   approx_kl = mean((r - 1) - log r)   (Schulman's k3 estimator of KL(π_old ‖ π_new), ≥ 0)
//   old_approx_kl = mean(-log r)       clip_fraction = mean(|r - 1| > ε)
struct RatioStats {
  double approx_kl = 0, old_approx_kl = 0, clip_fraction = 0;
};
RatioStats ratio_stats(const tg::Tensor& logp_new, const tg::Tensor& logp_old, double clip_coef);

// One mini-batch, with everything recorded during the rollout.
struct Minibatch {
  tg::Tensor observations;  // [B, 4] f32
  tg::Tensor actions;       // [B] i64
  tg::Tensor logp_old;      // [B] log π_old(action | observation)
  tg::Tensor advantages;    // [B] GAE advantages (normalised inside ppo_losses when configured)
  tg::Tensor returns;       // [B] GAE returns
  tg::Tensor values;        // [B] V_old
};

struct Losses {
  tg::Tensor total, policy, value, entropy;  // 0-d; total is what backward runs on
  tg::Tensor logp_new;                       // [B]
};
// The PPO loss of a mini-batch (the formula at the top of this file), recorded on the tape.
Losses ppo_losses(Agent& agent, const Minibatch& batch, const Config& config);

// What one update did.
struct UpdateStats {
  int64_t update = 0, global_step = 0;
  double lr = 0;
  double policy_loss = 0, value_loss = 0, entropy = 0;  // last mini-batch, as CleanRL logs them
  double approx_kl = 0, old_approx_kl = 0;              // last mini-batch
  double clip_fraction = 0;                             // mean over the update's mini-batches
  double explained_variance = 0;                        // of the returns by V_old
  int64_t epochs_run = 0;                               // < update_epochs after a target-KL stop
  double rollout_seconds = 0, optimise_seconds = 0;
};

// The whole training run, one update at a time.
class Trainer {
 public:
  explicit Trainer(const Config& config);

  bool finished() const { return update_ >= config_.updates(); }
  UpdateStats update();  // one rollout, then the optimisation epochs over it

  int64_t updates_done() const { return update_; }
  int64_t global_step() const { return update_ * config_.batch_size(); }
  // The mean return of the last `count` finished episodes (fewer when fewer have finished;
  // 0 before the first).
  double mean_return(int64_t count = 100) const;

  const Config& config() const { return config_; }
  Agent& agent() { return agent_; }
  tg::optim::Adam& optimizer() { return adam_; }
  const CartPoleVec& envs() const { return envs_; }
  // Model, optimizer, the sampling and shuffling generators, step (environment steps) and
  // epoch (updates), for tg::save_checkpoint.
  tg::TrainingState training_state();

 private:
  void rollout();
  void optimise(UpdateStats& stats);

  Config config_;
  tg::Generator init_, sampling_, shuffle_;
  Agent agent_;
  tg::optim::Adam adam_;
  tg::optim::LinearSchedule schedule_;
  CartPoleVec envs_;
  int64_t update_ = 0;
  // The rollout, time-major [step * envs + env]; observations [step * envs + env, 4].
  std::vector<float> observations_, logprobs_, rewards_, dones_, values_;
  std::vector<int64_t> actions_;
  std::vector<float> next_dones_, next_values_;
};

}  // namespace ppo
