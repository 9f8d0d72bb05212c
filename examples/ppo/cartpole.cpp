// examples/ppo/cartpole.cpp — the CartPole-v1 dynamics, the self-resetting vector of
// environments and the text picture (cartpole.h says what each one does).
#include "cartpole.h"

#include <cmath>

#include "tapegrad/error.h"

namespace ppo {

CartPoleState cartpole_step(const CartPoleState& s, int64_t action, const CartPoleConstants& c) {
  const double x = s[0], x_dot = s[1], theta = s[2], theta_dot = s[3];
  const double force = action == 1 ? c.force : -c.force;
  const double total_mass = c.cart_mass + c.pole_mass;
  const double pole_mass_length = c.pole_mass * c.half_pole_length;
  const double cos_theta = std::cos(theta), sin_theta = std::sin(theta);
  const double temp = (force + pole_mass_length * theta_dot * theta_dot * sin_theta) / total_mass;
  const double theta_acc =
      (c.gravity * sin_theta - cos_theta * temp) /
      (c.half_pole_length * (4.0 / 3.0 - c.pole_mass * cos_theta * cos_theta / total_mass));
  const double x_acc = temp - pole_mass_length * theta_acc * cos_theta / total_mass;
  // Explicit Euler: every update uses the velocities from before the step.
  return {x + c.tau * x_dot, x_dot + c.tau * x_acc, theta + c.tau * theta_dot,
          theta_dot + c.tau * theta_acc};
}

bool cartpole_terminated(const CartPoleState& s, const CartPoleConstants& c) {
  return s[0] < -c.x_limit || s[0] > c.x_limit || s[2] < -c.theta_limit || s[2] > c.theta_limit;
}

// ---------------------------------------------------------------- CartPoleVec

CartPoleVec::CartPoleVec(int64_t envs, uint64_t seed, uint64_t stream, CartPoleConstants constants)
    : constants_(constants), generator_(seed, stream) {
  tg::check(envs > 0, "CartPoleVec", "needs at least one environment, got ", envs);
  states_.resize(envs);
  observations_.resize(envs * kObservationSize);
  lengths_.assign(envs, 0);
  returns_.assign(envs, 0.0);
  terminated_.assign(envs, false);
  truncated_.assign(envs, false);
  for (int64_t e = 0; e < envs; ++e) reset(e);
}

void CartPoleVec::reset(int64_t env) {
  const double b = constants_.reset_bound;
  std::vector<double> u = tg::uniform({4}, -b, b, generator_, tg::DType::f64).to_vector();
  states_[env] = {u[0], u[1], u[2], u[3]};
  lengths_[env] = 0;
  returns_[env] = 0;
  observe(env);
}

void CartPoleVec::observe(int64_t env) {
  for (int i = 0; i < kObservationSize; ++i)
    observations_[env * kObservationSize + i] = static_cast<float>(states_[env][i]);
}

void CartPoleVec::set_state(int64_t env, const CartPoleState& state) {
  states_.at(env) = state;
  observe(env);
}

void CartPoleVec::step(const int64_t* actions, float* rewards, float* dones) {
  for (int64_t e = 0; e < size(); ++e)
    tg::check(actions[e] == 0 || actions[e] == 1, "CartPoleVec::step", "action ", actions[e],
              " for environment ", e, " is not 0 (left) or 1 (right)");
  for (int64_t e = 0; e < size(); ++e) {
    states_[e] = cartpole_step(states_[e], actions[e], constants_);
    ++lengths_[e];
    ++total_steps_;
    returns_[e] += 1.0;  // every step earns 1, the terminating one included
    rewards[e] = 1.0f;
    terminated_[e] = cartpole_terminated(states_[e], constants_);
    truncated_[e] = !terminated_[e] && lengths_[e] >= constants_.max_episode_steps;
    dones[e] = terminated_[e] || truncated_[e] ? 1.0f : 0.0f;
    if (dones[e] != 0) {
      episode_returns_.push_back(returns_[e]);
      episode_lengths_.push_back(lengths_[e]);
      episode_end_steps_.push_back(total_steps_);
      reset(e);
    } else {
      observe(e);
    }
  }
}

// ---------------------------------------------------------------- text picture

std::string draw_cartpole(const CartPoleState& s, const CartPoleConstants& c, int width,
                          int height) {
  tg::check(width >= 11 && height >= 4, "draw_cartpole", "a picture needs at least 11 x 4 "
            "characters, got ", width, " x ", height);
  std::vector<std::string> rows(height, std::string(width, ' '));
  auto put = [&](int row, long column, char ch) {
    if (row >= 0 && row < height && column >= 0 && column < width) rows[row][column] = ch;
  };
  // The track: |-----| over [-x_limit, x_limit]; the cart's centre mapped onto it.
  rows[height - 1] = std::string(width, '-');
  rows[height - 1].front() = rows[height - 1].back() = '|';
  const double position = (s[0] + c.x_limit) / (2 * c.x_limit);  // 0 at the left limit, 1 right
  const long centre = std::lround(position * (width - 1));
  for (long column = centre - 2; column <= centre + 1; ++column)
    put(height - 2, column, column == centre - 2 ? '[' : column == centre + 1 ? ']' : '=');
  // The pole from the pivot on top of the cart, height - 2 rows long when upright; characters
  // are about twice as tall as wide, hence the 2 on the horizontal offset.
  const int length = height - 2;
  for (int k = 1; k <= 4 * length; ++k) {
    double t = static_cast<double>(k) / (4 * length);
    long column = centre + std::lround(2 * t * length * std::sin(s[2]));
    int row = height - 2 - static_cast<int>(std::lround(t * length * std::cos(s[2])));
    if (row < height - 2) put(row, column, k == 4 * length ? 'o' : '*');  // above the cart
  }
  std::string picture;
  for (const std::string& row : rows) picture += row + "\n";
  return picture;
}

}  // namespace ppo
