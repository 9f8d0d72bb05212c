// examples/ppo/ppo.cpp — the agent, GAE, the PPO loss and the training loop (ppo.h explains the
// algorithm; the names follow CleanRL's ppo.py so the two read side by side).
#include "ppo.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>

namespace ppo {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// CleanRL's layer_init: a Linear with orthogonal weights of the given gain and zero biases.
std::shared_ptr<tg::nn::Linear> layer(int64_t in, int64_t out, double gain, tg::Generator& init) {
  auto linear = std::make_shared<tg::nn::Linear>(in, out, init);
  tg::nn::init::orthogonal_(linear->weight, init, gain);
  tg::nn::init::zeros_(linear->bias);
  return linear;
}

std::shared_ptr<tg::nn::Sequential> mlp(int64_t in, int64_t hidden, int64_t out, double last_gain,
                                        tg::Generator& init) {
  using tg::nn::Activation;
  using tg::nn::ActivationLayer;
  const double root2 = std::sqrt(2.0);
  return std::make_shared<tg::nn::Sequential>(std::vector<std::shared_ptr<tg::nn::Module>>{
      layer(in, hidden, root2, init), std::make_shared<ActivationLayer>(Activation::tanh),
      layer(hidden, hidden, root2, init), std::make_shared<ActivationLayer>(Activation::tanh),
      layer(hidden, out, last_gain, init)});
}

// A [rows, columns] tensor holding a copy of host values.
tg::Tensor host_tensor(const float* values, int64_t rows, int64_t columns) {
  tg::Tensor t = tg::empty({rows, columns});
  std::memcpy(t.data<float>(), values, sizeof(float) * rows * columns);
  return t;
}
tg::Tensor host_vector(const std::vector<float>& values) {
  return tg::reshape(host_tensor(values.data(), 1, static_cast<int64_t>(values.size())), {-1});
}

// (x - mean) / (std + 1e-8), with the unbiased standard deviation (torch.Tensor.std).
tg::Tensor normalize(const tg::Tensor& x) {
  tg::Tensor centred = x - tg::mean(x);
  tg::Tensor variance = tg::sum(tg::square(centred)) / static_cast<double>(x.numel() - 1);
  return centred / (tg::sqrt(variance) + 1e-8);
}

// 1 - Var(returns - values) / Var(returns), NaN when the returns do not vary.
double explained_variance(const std::vector<float>& values, const std::vector<float>& returns) {
  const double n = static_cast<double>(values.size());
  double mean_y = 0, mean_d = 0;
  for (size_t i = 0; i < values.size(); ++i) mean_y += returns[i], mean_d += returns[i] - values[i];
  mean_y /= n, mean_d /= n;
  double var_y = 0, var_d = 0;
  for (size_t i = 0; i < values.size(); ++i) {
    var_y += (returns[i] - mean_y) * (returns[i] - mean_y);
    double d = returns[i] - values[i] - mean_d;
    var_d += d * d;
  }
  return var_y == 0 ? std::nan("") : 1 - var_d / var_y;
}

const Config& checked(const Config& config) {
  config.check();
  return config;
}

}  // namespace

void Config::check() const {
  const char* op = "ppo";
  tg::check(envs > 0 && rollout_steps > 0, op, "envs and rollout steps must be positive, got ",
            envs, " and ", rollout_steps);
  tg::check(minibatches > 0 && batch_size() % minibatches == 0 && minibatch_size() >= 2, op,
            "the batch of ", batch_size(), " steps (envs x rollout steps) must split into ",
            minibatches, " equal mini-batches of at least 2");
  tg::check(total_steps >= batch_size(), op, "total steps ", total_steps,
            " are fewer than one batch of ", batch_size(), " (envs x rollout steps)");
  tg::check(update_epochs > 0 && hidden > 0, op, "update epochs and hidden size must be positive");
  tg::check(lr > 0 && gamma >= 0 && gamma <= 1 && gae_lambda >= 0 && gae_lambda <= 1, op,
            "need lr > 0 and gamma, lambda in [0, 1]");
  tg::check(clip_coef > 0 && clip_coef < 1, op, "clip coefficient must lie in (0, 1), got ",
            clip_coef);
  tg::check(max_grad_norm > 0 && target_kl >= 0, op,
            "max grad norm must be positive and target KL >= 0");
}

// ---------------------------------------------------------------- Agent

// CleanRL builds the critic before the actor; so do we (the order of the initial draws).
Agent::Agent(int64_t observations, int64_t actions, int64_t hidden, tg::Generator& init)
    : critic(register_module("critic", mlp(observations, hidden, 1, 1.0, init))),
      actor(register_module("actor", mlp(observations, hidden, actions, 0.01, init))) {}

tg::Tensor Agent::logits(const tg::Tensor& observations) { return (*actor)(observations); }

tg::Tensor Agent::value(const tg::Tensor& observations) {
  return tg::reshape((*critic)(observations), {-1});
}

// ---------------------------------------------------------------- GAE

Advantages compute_gae(const std::vector<float>& rewards, const std::vector<float>& values,
                       const std::vector<float>& dones, const std::vector<float>& next_values,
                       const std::vector<float>& next_dones, int64_t envs, double gamma,
                       double lambda) {
  const int64_t n = static_cast<int64_t>(rewards.size());
  tg::check(envs > 0 && n % envs == 0 && values.size() == rewards.size() &&
                dones.size() == rewards.size() && next_values.size() == size_t(envs) &&
                next_dones.size() == size_t(envs),
            "compute_gae", "expected rewards, values and dones of steps x ", envs,
            " and next values and dones of ", envs);
  const int64_t steps = n / envs;
  Advantages out{std::vector<float>(n), std::vector<float>(n)};
  for (int64_t e = 0; e < envs; ++e) {
    double last_advantage = 0;  // Â_{t+1}
    for (int64_t t = steps - 1; t >= 0; --t) {
      const int64_t i = t * envs + e;
      const bool last = t == steps - 1;
      const double next_nonterminal = 1.0 - (last ? next_dones[e] : dones[i + envs]);
      const double next_value = last ? next_values[e] : values[i + envs];
      const double delta = rewards[i] + gamma * next_value * next_nonterminal - values[i];
      last_advantage = delta + gamma * lambda * next_nonterminal * last_advantage;
      out.advantages[i] = static_cast<float>(last_advantage);
      out.returns[i] = static_cast<float>(last_advantage + values[i]);
    }
  }
  return out;
}

// ---------------------------------------------------------------- the loss

RatioStats ratio_stats(const tg::Tensor& logp_new, const tg::Tensor& logp_old, double clip_coef) {
  std::vector<double> a = logp_new.to_vector(), b = logp_old.to_vector();
  tg::check(a.size() == b.size() && !a.empty(), "ratio_stats",
            "expected two log-probability tensors of one size, got ", logp_new.shape(), " and ",
            logp_old.shape());
  RatioStats stats;
  for (size_t i = 0; i < a.size(); ++i) {
    double log_ratio = std::min(a[i] - b[i], tg::ppo_max_log_ratio);
    double ratio = std::exp(log_ratio);
    stats.approx_kl += (ratio - 1) - log_ratio;
    stats.old_approx_kl += -log_ratio;
    stats.clip_fraction += std::fabs(ratio - 1) > clip_coef ? 1 : 0;
  }
  const double n = static_cast<double>(a.size());
  stats.approx_kl /= n, stats.old_approx_kl /= n, stats.clip_fraction /= n;
  return stats;
}

Losses ppo_losses(Agent& agent, const Minibatch& batch, const Config& config) {
  const int64_t n = batch.observations.size(0);
  tg::Tensor logits = agent.logits(batch.observations);  // [B, actions]
  Losses out;
  out.logp_new = tg::reshape(
      tg::gather(tg::log_softmax(logits), 1, tg::reshape(batch.actions, {n, 1})), {n});
  out.entropy = tg::entropy_logits(logits, -1, 1.0, tg::Reduction::mean);

  tg::Tensor advantages = batch.advantages;
  if (config.normalize_advantages) {
    tg::NoGrad no_grad;
    advantages = normalize(advantages);
  }
  out.policy = tg::ppo_clip_loss(out.logp_new, batch.logp_old, advantages, config.clip_coef);

  tg::Tensor new_value = agent.value(batch.observations);  // [B]
  tg::Tensor unclipped = tg::square(new_value - batch.returns);
  if (config.clip_value_loss) {
    const double c = config.clip_coef;
    tg::Tensor clipped_value = batch.values + tg::clamp(new_value - batch.values, -c, c);
    tg::Tensor clipped = tg::square(clipped_value - batch.returns);
    out.value = 0.5 * tg::mean(tg::maximum(unclipped, clipped));
  } else {
    out.value = 0.5 * tg::mean(unclipped);
  }
  out.total = out.policy - config.entropy_coef * out.entropy + config.value_coef * out.value;
  return out;
}

// ---------------------------------------------------------------- Trainer

Trainer::Trainer(const Config& config)
    : config_(checked(config)),
      // One seed, separate Philox streams: initialisation, action sampling, shuffling; the
      // environments' resets use stream 3.
      init_(config.seed, 0),
      sampling_(config.seed, 1),
      shuffle_(config.seed, 2),
      agent_(CartPoleVec::kObservationSize, CartPoleVec::kActions, config.hidden, init_),
      adam_(agent_.parameters(), [&] {
        tg::optim::AdamOptions options;
        options.lr = config.lr;
        options.eps = config.adam_eps;
        return options;
      }()),
      schedule_(config.lr, 1.0, 0.0, config.updates()),
      envs_(config.envs, config.seed, 3) {
  const int64_t n = config_.batch_size();
  observations_.resize(n * CartPoleVec::kObservationSize);
  logprobs_.resize(n);
  rewards_.resize(n);
  dones_.resize(n);
  values_.resize(n);
  actions_.resize(n);
  next_dones_.assign(config_.envs, 0.0f);
  next_values_.resize(config_.envs);
}

double Trainer::mean_return(int64_t count) const {
  const std::vector<double>& returns = envs_.episode_returns();
  int64_t n = std::min<int64_t>(count, static_cast<int64_t>(returns.size()));
  if (n == 0) return 0;
  double total = 0;
  for (int64_t i = static_cast<int64_t>(returns.size()) - n; i < int64_t(returns.size()); ++i)
    total += returns[i];
  return total / static_cast<double>(n);
}

tg::TrainingState Trainer::training_state() {
  tg::TrainingState state{&agent_, &adam_, {{"sampling", &sampling_}, {"shuffle", &shuffle_}}};
  state.step = global_step();
  state.epoch = update_;
  return state;
}

// Runs the policy for rollout_steps steps in every environment, storing what the update needs.
void Trainer::rollout() {
  tg::NoGrad no_grad;
  const int64_t envs = config_.envs, obs_size = CartPoleVec::kObservationSize;
  for (int64_t step = 0; step < config_.rollout_steps; ++step) {
    const int64_t at = step * envs;
    std::copy(envs_.observations().begin(), envs_.observations().end(),
              observations_.begin() + at * obs_size);
    std::copy(next_dones_.begin(), next_dones_.end(), dones_.begin() + at);

    tg::Tensor observation = host_tensor(envs_.observations().data(), envs, obs_size);
    tg::Tensor logits = agent_.logits(observation);               // [envs, 2]
    tg::Tensor action = tg::categorical(logits, sampling_);       // [envs] i64
    tg::Tensor logp = tg::gather(tg::log_softmax(logits), 1, tg::reshape(action, {envs, 1}));
    tg::Tensor value = agent_.value(observation);                 // [envs]
    std::copy_n(action.data<int64_t>(), envs, actions_.begin() + at);
    std::copy_n(logp.data<float>(), envs, logprobs_.begin() + at);
    std::copy_n(value.data<float>(), envs, values_.begin() + at);

    envs_.step(&actions_[at], &rewards_[at], next_dones_.data());
  }
  tg::Tensor last = host_tensor(envs_.observations().data(), envs, obs_size);
  tg::Tensor next_value = agent_.value(last);
  std::copy_n(next_value.data<float>(), envs, next_values_.begin());
}

void Trainer::optimise(UpdateStats& stats) {
  Advantages gae = compute_gae(rewards_, values_, dones_, next_values_, next_dones_, config_.envs,
                               config_.gamma, config_.gae_lambda);
  const int64_t n = config_.batch_size(), size = config_.minibatch_size();
  // The whole batch as tensors, once; mini-batches are index_select'ed rows of it (actions as
  // f32 there, as index_select moves floating rows, and back to i64 per mini-batch).
  std::vector<float> action_values(actions_.begin(), actions_.end());
  Minibatch all{host_tensor(observations_.data(), n, CartPoleVec::kObservationSize),
                host_vector(action_values),
                host_vector(logprobs_),
                host_vector(gae.advantages),
                host_vector(gae.returns),
                host_vector(values_)};
  std::vector<tg::Tensor> parameters = agent_.parameters();
  double clip_fraction_sum = 0;
  int64_t minibatches_run = 0;
  for (int64_t epoch = 0; epoch < config_.update_epochs; ++epoch) {
    tg::Tensor order = tg::randperm(n, shuffle_);
    for (int64_t start = 0; start < n; start += size) {
      tg::Tensor rows = tg::slice(order, 0, start, start + size);
      Minibatch batch{tg::index_select(all.observations, 0, rows),
                      tg::index_select(all.actions, 0, rows).to(tg::DType::i64),
                      tg::index_select(all.logp_old, 0, rows),
                      tg::index_select(all.advantages, 0, rows),
                      tg::index_select(all.returns, 0, rows),
                      tg::index_select(all.values, 0, rows)};
      Losses losses = ppo_losses(agent_, batch, config_);
      RatioStats ratios = ratio_stats(losses.logp_new, batch.logp_old, config_.clip_coef);
      clip_fraction_sum += ratios.clip_fraction;
      ++minibatches_run;

      adam_.zero_grad();
      tg::backward(losses.total);
      tg::optim::clip_grad_norm(parameters, config_.max_grad_norm);
      adam_.step();

      stats.policy_loss = losses.policy.item();
      stats.value_loss = losses.value.item();
      stats.entropy = losses.entropy.item();
      stats.approx_kl = ratios.approx_kl;
      stats.old_approx_kl = ratios.old_approx_kl;
    }
    stats.epochs_run = epoch + 1;
    if (config_.target_kl > 0 && stats.approx_kl > config_.target_kl) break;
  }
  stats.clip_fraction = clip_fraction_sum / static_cast<double>(minibatches_run);
  stats.explained_variance = explained_variance(values_, gae.returns);
}

UpdateStats Trainer::update() {
  tg::check(!finished(), "ppo", "all ", config_.updates(), " updates are done");
  UpdateStats stats;
  stats.update = update_ + 1;
  stats.lr = config_.anneal_lr ? schedule_.lr(update_) : config_.lr;
  adam_.set_lr(stats.lr);

  Clock::time_point start = Clock::now();
  rollout();
  stats.rollout_seconds = seconds_since(start);
  start = Clock::now();
  optimise(stats);
  stats.optimise_seconds = seconds_since(start);

  ++update_;
  stats.global_step = global_step();
  return stats;
}

}  // namespace ppo
