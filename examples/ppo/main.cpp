// examples/ppo — PPO on CartPole-v1: CleanRL's ppo.py with its defaults, on a C++ CartPole with
// Gymnasium's dynamics, trained with tapegrad.
//
//   ./build/examples/ppo/ppo                                  # 500k steps, writes out/ppo/
//   ./build/examples/ppo/ppo --seed 3 --out out/ppo3
//   ./build/examples/ppo/ppo --eval out/ppo/checkpoint.tgc --render
//
// See README.md in this folder for the flags, the outputs and the speed.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "blas_kernels.h"
#include "cli_checks.h"
#include "plot.h"
#include "ppo.h"

namespace {

constexpr double kSolvedReturn = 475;  // CartPole-v1's reward threshold, over 100 episodes

struct Options {
  ppo::Config config;
  std::string out = "out/ppo";
  int64_t log_every = 10240;  // steps between progress lines
  int threads = 1;
  std::string eval;  // a checkpoint: evaluate instead of training
  int64_t episodes = 10;
  bool render = false;
};

using Clock = std::chrono::steady_clock;

// ---------------------------------------------------------------- outputs

std::vector<double> update_row(const ppo::UpdateStats& s, int64_t episodes, double mean_return,
                               double seconds) {
  return {static_cast<double>(s.update),
          static_cast<double>(s.global_step),
          static_cast<double>(episodes),
          mean_return,
          s.approx_kl,
          s.old_approx_kl,
          s.clip_fraction,
          s.policy_loss,
          s.value_loss,
          s.entropy,
          s.explained_variance,
          s.lr,
          static_cast<double>(s.epochs_run),
          seconds};
}

void write_outputs(const std::string& out, const std::vector<std::vector<double>>& updates,
                   const ppo::CartPoleVec& envs, const std::vector<double>& curve_steps,
                   const std::vector<double>& curve_returns, uint64_t seed) {
  tg::data::write_csv(out + "/learning_curve.csv",
                      {"update", "steps", "episodes", "mean_return_last_100", "approx_kl",
                       "old_approx_kl", "clip_fraction", "policy_loss", "value_loss", "entropy",
                       "explained_variance", "lr", "epochs_run", "seconds"},
                      updates);
  std::vector<std::vector<double>> episodes;
  std::vector<double> end_steps, returns;
  for (size_t i = 0; i < envs.episode_returns().size(); ++i) {
    end_steps.push_back(static_cast<double>(envs.episode_end_steps()[i]));
    returns.push_back(envs.episode_returns()[i]);
    episodes.push_back({static_cast<double>(i + 1), end_steps[i], returns[i],
                        static_cast<double>(envs.episode_lengths()[i])});
  }
  tg::data::write_csv(out + "/episodes.csv", {"episode", "end_step", "return", "length"}, episodes);
  if (curve_steps.empty()) return;
  examples::Plot plot("PPO on CartPole-v1, seed " + std::to_string(seed), "environment steps",
                      "episode return");
  // The y range leaves room above 500 for the legend.
  plot.points("one episode", end_steps, returns, {180, 200, 225})
      .line("mean of the last 100", curve_steps, curve_returns, examples::palette(0))
      .line("solved (475)", {0, curve_steps.back()}, {kSolvedReturn, kSolvedReturn},
            examples::palette(3), true)
      .y_range(0, 650);
  plot.save_png(out + "/learning_curve.png");
}

// ---------------------------------------------------------------- training

int train(const Options& options) {
  const ppo::Config& c = options.config;
  ppo::Trainer trainer(c);
  std::filesystem::create_directories(options.out);
  const std::string checkpoint = options.out + "/checkpoint.tgc";
  std::printf(
      "PPO on CartPole-v1 (CleanRL ppo.py defaults), seed %llu: %lld envs x %lld steps, "
      "%lld updates (%lld steps), %lld mini-batches x %lld epochs, lr %g%s\n%s, %d "
      "thread(s)\n",
      static_cast<unsigned long long>(c.seed), static_cast<long long>(c.envs),
      static_cast<long long>(c.rollout_steps), static_cast<long long>(c.updates()),
      static_cast<long long>(c.updates() * c.batch_size()), static_cast<long long>(c.minibatches),
      static_cast<long long>(c.update_epochs), c.lr, c.anneal_lr ? " annealed to 0" : "",
      examples::blas_kernels().c_str(), tg::num_threads());
  std::fflush(stdout);

  std::vector<std::vector<double>> rows;
  std::vector<double> curve_steps, curve_returns;
  int64_t solved_at = -1, next_log = options.log_every;
  double rollout_seconds = 0, optimise_seconds = 0;
  const Clock::time_point start = Clock::now();
  const std::clock_t cpu_start = std::clock();  // CPU time of the process: less noisy when shared
  auto elapsed = [&] { return std::chrono::duration<double>(Clock::now() - start).count(); };
  while (!trainer.finished()) {
    ppo::UpdateStats stats = trainer.update();
    rollout_seconds += stats.rollout_seconds;
    optimise_seconds += stats.optimise_seconds;
    const int64_t episodes = static_cast<int64_t>(trainer.envs().episode_returns().size());
    const double mean_return = trainer.mean_return(100);
    rows.push_back(update_row(stats, episodes, mean_return, elapsed()));
    if (episodes > 0) {
      curve_steps.push_back(static_cast<double>(stats.global_step));
      curve_returns.push_back(mean_return);
    }
    if (solved_at < 0 && episodes >= 100 && mean_return >= kSolvedReturn) {
      solved_at = stats.global_step;
      std::printf(
          "solved: the mean return of the last 100 episodes reached %.0f at step %lld "
          "(%.1f s)\n",
          kSolvedReturn, static_cast<long long>(solved_at), elapsed());
    }
    if (stats.global_step >= next_log || trainer.finished()) {
      next_log += options.log_every;
      std::printf(
          "steps %7lld  return %6.1f (last 100 of %lld episodes)  approx_kl %.1e  "
          "clipfrac %.3f  sps %.0f\n",
          static_cast<long long>(stats.global_step), mean_return, static_cast<long long>(episodes),
          stats.approx_kl, stats.clip_fraction, static_cast<double>(stats.global_step) / elapsed());
      std::fflush(stdout);
      tg::save_checkpoint(checkpoint, trainer.training_state());
    }
  }
  // Both clocks stop here, before the outputs are written: the bench compares the training loops.
  const double seconds = elapsed();
  const double cpu_seconds = static_cast<double>(std::clock() - cpu_start) / CLOCKS_PER_SEC;
  write_outputs(options.out, rows, trainer.envs(), curve_steps, curve_returns, c.seed);
  std::printf(
      "time: %.1f s rolling out (policy + environment), %.1f s optimising, %.1f s other "
      "(progress, checkpoints); cpu time %.2f s\n",
      rollout_seconds, optimise_seconds, seconds - rollout_seconds - optimise_seconds, cpu_seconds);
  if (solved_at < 0)
    std::printf("not solved: the mean return of the last 100 episodes never reached %.0f\n",
                kSolvedReturn);
  std::printf("wrote %s/{learning_curve.csv, learning_curve.png, episodes.csv, checkpoint.tgc}\n",
              options.out.c_str());
  std::printf("final: steps %lld, mean return (last 100 episodes) %.1f, time %.1f s\n",
              static_cast<long long>(trainer.global_step()), trainer.mean_return(100), seconds);
  return 0;
}

// ---------------------------------------------------------------- evaluation

// Greedy episodes (the most probable action each step) with the policy of a checkpoint.
int evaluate(const Options& options) {
  tg::StateDict model = tg::read_state_dict(options.eval).with_prefix("model.");
  const tg::Tensor* first = model.find("actor.0.weight");
  tg::check(first != nullptr && first->dim() == 2, "ppo --eval", options.eval,
            " holds no PPO agent (no model.actor.0.weight)");
  tg::Generator unused(0);
  ppo::Agent agent(ppo::CartPoleVec::kObservationSize, ppo::CartPoleVec::kActions, first->size(0),
                   unused);
  agent.load_state_dict(model);

  ppo::CartPoleVec env(1, options.config.seed, 4);  // a stream training never uses
  const bool terminal = isatty(STDOUT_FILENO) == 1;
  const int picture_lines = 10;  // 9 rows of picture + the status line
  tg::NoGrad no_grad;
  double total = 0;
  for (int64_t episode = 1; episode <= options.episodes; ++episode) {
    bool drawn = false;
    for (int64_t step = 1;; ++step) {
      tg::Tensor observation = tg::empty({1, ppo::CartPoleVec::kObservationSize});
      std::copy(env.observations().begin(), env.observations().end(), observation.data<float>());
      int64_t action = static_cast<int64_t>(tg::argmax(agent.logits(observation), -1).item());
      const ppo::CartPoleState before = env.state(0);
      float reward = 0, done = 0;
      env.step(&action, &reward, &done);
      if (options.render) {
        // The state after the step (the environment has already reset when the episode ended).
        ppo::CartPoleState shown = done != 0 ? ppo::cartpole_step(before, action) : env.state(0);
        if (terminal && drawn) std::printf("\x1b[%dA", picture_lines);  // redraw in place
        std::printf("%sepisode %lld  step %4lld  x %+.3f  angle %+6.2f deg  push %s\n",
                    ppo::draw_cartpole(shown).c_str(), static_cast<long long>(episode),
                    static_cast<long long>(step), shown[0], shown[2] * 180 / 3.14159265358979,
                    action == 1 ? "right" : "left ");
        std::fflush(stdout);
        drawn = true;
        if (terminal) std::this_thread::sleep_for(std::chrono::milliseconds(20));  // real time
      }
      if (done != 0) break;
    }
    const double episode_return = env.episode_returns().back();
    total += episode_return;
    std::printf("episode %lld: return %.0f (%s)\n", static_cast<long long>(episode), episode_return,
                env.truncated()[0] ? "truncated at 500 steps" : "pole fell or cart left");
  }
  std::printf("greedy policy of %s: mean return %.1f over %lld episodes\n", options.eval.c_str(),
              total / static_cast<double>(options.episodes),
              static_cast<long long>(options.episodes));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"PPO (CleanRL's ppo.py) on CartPole-v1 with tapegrad"};
  Options o;
  ppo::Config& c = o.config;
  app.add_option("--seed", c.seed, "random seed (initialisation, actions, shuffling, resets)")
      ->capture_default_str();
  app.add_option("--total-steps", c.total_steps, "environment steps in all (over all envs)")
      ->capture_default_str()
      ->check(examples::positive);
  app.add_option("--envs", c.envs, "parallel environments")
      ->capture_default_str()
      ->check(examples::positive);
  app.add_option("--rollout-steps", c.rollout_steps, "steps per environment and update")
      ->capture_default_str()
      ->check(examples::positive);
  app.add_option("--lr", c.lr, "Adam learning rate (annealed linearly to 0)")
      ->capture_default_str()
      ->check(examples::positive);
  app.add_option("--target-kl", c.target_kl,
                 "stop an update's epochs once approx KL exceeds this (0: never)")
      ->capture_default_str()
      ->check(examples::non_negative);
  app.add_option("--out", o.out, "output folder")->capture_default_str();
  app.add_option("--log-every", o.log_every, "environment steps between progress lines")
      ->capture_default_str()
      ->check(examples::positive);
  app.add_option("--threads", o.threads,
                 "BLAS threads (default 1: the layers are 64 wide, threads only add overhead)")
      ->capture_default_str()
      ->check(examples::non_negative);
  app.add_option("--eval", o.eval, "evaluate the policy in this checkpoint instead of training")
      ->check(CLI::ExistingFile);
  app.add_option("--episodes", o.episodes, "greedy episodes to run with --eval")
      ->capture_default_str()
      ->check(examples::positive);
  app.add_flag("--render", o.render, "with --eval: draw each step as a text picture");
  CLI11_PARSE(app, argc, argv);
  try {
    if (o.threads > 0) tg::set_num_threads(o.threads);
    return o.eval.empty() ? train(o) : evaluate(o);
  } catch (const tg::Error& e) {
    std::cerr << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "ppo: " << e.what() << "\n";
    return 1;
  }
}
