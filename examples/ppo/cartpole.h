// examples/ppo/cartpole.h — CartPole-v1 with Gymnasium's exact dynamics, vectorised over N
// environments that reset themselves, seeded through tapegrad's Philox generator.
//
// The physics (Barto, Sutton & Anderson 1983; Gymnasium's classic_control/cartpole.py, Florian's
// corrected equations): a pole hinged on a cart that moves on a frictionless track, pushed left or
// right with a force of 10 N each step. The state s = (x, ẋ, θ, θ̇) — cart position and
// velocity, pole angle from upright (positive: leaning right) and its rate — advances by one
// explicit Euler step of τ = 0.02 s:
//
//   temp = (F + m_p·l·θ̇²·sin θ) / (m_c + m_p)
//   θ̈   = (g·sin θ - cos θ·temp) / (l·(4/3 - m_p·cos²θ / (m_c + m_p)))
//   ẍ   = temp - m_p·l·θ̈·cos θ / (m_c + m_p)
//   x += τ·ẋ,  ẋ += τ·ẍ,  θ += τ·θ̇,  θ̇ += τ·θ̈       (old velocities on the right: Euler)
//
// with g = 9.8, m_c = 1.0, m_p = 0.1, l = 0.5 (half the pole's length). The reward is 1 for every
// step, the last one included. An episode terminates when |θ| > 12° or |x| > 2.4 and is truncated
// after 500 steps (Gymnasium's TimeLimit for v1). Resets draw each state variable uniformly from
// [-0.05, 0.05). As in Gymnasium the state is kept in double precision and observed as float32.
//
// Vectorised as the gym SyncVectorEnv that CleanRL's ppo.py uses: an environment whose episode
// ends is reset inside the same step, so the observation returned for it is the first one of its
// next episode, and `done` (terminated or truncated) says that happened.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "tapegrad/random.h"

namespace ppo {

struct CartPoleConstants {
  double gravity = 9.8;
  double cart_mass = 1.0;
  double pole_mass = 0.1;
  double half_pole_length = 0.5;
  double force = 10.0;
  double tau = 0.02;                                 // seconds per step
  double theta_limit = 12 * 2 * 3.14159265358979323846 / 360;  // 12° in radians
  double x_limit = 2.4;
  int64_t max_episode_steps = 500;                   // truncation (CartPole-v1)
  double reset_bound = 0.05;                         // resets draw from U[-0.05, 0.05)
};

using CartPoleState = std::array<double, 4>;  // x, ẋ, θ, θ̇

// One Euler step of the dynamics above; action 1 pushes right, 0 pushes left.
CartPoleState cartpole_step(const CartPoleState& state, int64_t action,
                            const CartPoleConstants& constants = {});
// True when the state lies outside the track or the angle limit (the episode terminates).
bool cartpole_terminated(const CartPoleState& state, const CartPoleConstants& constants = {});

class CartPoleVec {
 public:
  static constexpr int kObservationSize = 4;
  static constexpr int kActions = 2;

  // `envs` environments, each reset from `generator` (seed, stream): the same seed gives the
  // same episodes for the same actions.
  CartPoleVec(int64_t envs, uint64_t seed, uint64_t stream = 0, CartPoleConstants constants = {});

  int64_t size() const { return static_cast<int64_t>(states_.size()); }
  // The current observations, [envs, 4] row-major float32.
  const std::vector<float>& observations() const { return observations_; }
  const CartPoleState& state(int64_t env) const { return states_.at(env); }
  // Sets an environment's state (for tests and for rendering a given position); its episode
  // length is kept.
  void set_state(int64_t env, const CartPoleState& state);

  // Steps every environment with its action (0 or 1; anything else is a tg::Error). Writes the
  // reward (1) and done (1 when the episode ended, terminated or truncated, else 0) per
  // environment; environments whose episode ended are reset, and their finished episode is
  // appended to episode_returns() / episode_lengths().
  void step(const int64_t* actions, float* rewards, float* dones);

  // What happened in the last step, per environment.
  const std::vector<bool>& terminated() const { return terminated_; }
  const std::vector<bool>& truncated() const { return truncated_; }

  // Every finished episode so far, in the order they finished.
  const std::vector<double>& episode_returns() const { return episode_returns_; }
  const std::vector<int64_t>& episode_lengths() const { return episode_lengths_; }
  // The global step count (summed over environments) at which each episode finished.
  const std::vector<int64_t>& episode_end_steps() const { return episode_end_steps_; }
  int64_t total_steps() const { return total_steps_; }

  const CartPoleConstants& constants() const { return constants_; }

 private:
  void reset(int64_t env);
  void observe(int64_t env);

  CartPoleConstants constants_;
  tg::Generator generator_;
  std::vector<CartPoleState> states_;
  std::vector<float> observations_;
  std::vector<int64_t> lengths_;
  std::vector<double> returns_;
  std::vector<bool> terminated_, truncated_;
  std::vector<double> episode_returns_;
  std::vector<int64_t> episode_lengths_, episode_end_steps_;
  int64_t total_steps_ = 0;
};

// A text picture of the cart and pole: a track `width` characters wide spanning
// [-x_limit, x_limit], the cart as [==], the pole as a line of '*' `height - 2` rows long at the
// state's angle. Lines end in '\n'.
std::string draw_cartpole(const CartPoleState& state, const CartPoleConstants& constants = {},
                          int width = 61, int height = 9);

}  // namespace ppo
