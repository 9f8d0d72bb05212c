#!/usr/bin/python3
"""Train PPO on CartPole-v1 with tapegrad (examples/ppo) and with PyTorch, one after the other in
one run, and print both times, both final returns and the speed ratio.

    /usr/bin/python3 bench/ppo_vs_pytorch.py                      # 500k steps each, seed 1
    /usr/bin/python3 bench/ppo_vs_pytorch.py --total-steps 100000 --seed 2

Run it with /usr/bin/python3, which imports Debian's python3-torch (apt-get install python3-torch);
PyTorch is only ever used here, never by the library. The PyTorch side is CleanRL's ppo.py for
CartPole-v1 with its defaults (4 envs x 128 steps, Adam lr 2.5e-4 annealed, eps 1e-5, gamma 0.99,
GAE lambda 0.95, 4 mini-batches x 4 epochs, clip 0.2, clipped value loss x 0.5, entropy 0.01,
advantage normalisation, grad-norm clip 0.5, separate 64-64 tanh actor and critic with
orthogonal init) on the CPU, with gym's CartPole replaced by a NumPy CartPole vectorised over the
4 environments with Gymnasium's constants and dynamics (the same as examples/ppo/cartpole.h), so
neither side pays for gym. Both sides run one thread: torch.set_num_threads(1) and
OPENBLAS_NUM_THREADS=1 for PyTorch, --threads 1 (OpenBLAS) for tapegrad. Each runs in its own
child process. Both report the wall time and the CPU time of their training loop (the CPU time is
less disturbed when other processes share the machine); the ratio of each is printed, with the
load average before and after. --rounds N alternates the two sides N times and reports the
median ratios.
"""
import argparse
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FINAL = re.compile(r"final: steps (\d+), mean return \(last 100 episodes\) ([\d.]+), time ([\d.]+) s")
SOLVED = re.compile(r"solved: .* at step (\d+)")
CPU = re.compile(r"cpu time ([\d.]+) s")


def load_average():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def run_child(command, env=None):
    """Runs `command`, echoing its output indented; returns (output, exit status)."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=env)
    lines = []
    for line in process.stdout:
        sys.stdout.write("    " + line)
        sys.stdout.flush()
        lines.append(line)
    process.wait()
    return "".join(lines), process.returncode


# ---------------------------------------------------------------- the PyTorch side

class CartPoleVec:
    """Gymnasium CartPole-v1, vectorised with NumPy: Euler steps of tau = 0.02 s, termination at
    |theta| > 12 deg or |x| > 2.4, truncation after 500 steps, resets uniform in [-0.05, 0.05),
    state in float64, observations in float32; an environment whose episode ends is reset in the
    same step (gym's SyncVectorEnv, as CleanRL uses it)."""

    gravity, cart_mass, pole_mass, half_length, force_mag, tau = 9.8, 1.0, 0.1, 0.5, 10.0, 0.02
    theta_limit, x_limit, max_steps = 12 * 2 * math.pi / 360, 2.4, 500

    def __init__(self, n, rng):
        import numpy as np
        self.np, self.rng, self.n = np, rng, n
        self.state = rng.uniform(-0.05, 0.05, size=(n, 4))
        self.lengths = np.zeros(n, dtype=np.int64)
        self.returns = np.zeros(n)
        self.finished = []  # returns of finished episodes

    def observations(self):
        return self.state.astype(self.np.float32)

    def step(self, actions):
        np = self.np
        x, x_dot, theta, theta_dot = self.state.T
        force = np.where(actions == 1, self.force_mag, -self.force_mag)
        cos, sin = np.cos(theta), np.sin(theta)
        total_mass = self.cart_mass + self.pole_mass
        pml = self.pole_mass * self.half_length
        temp = (force + pml * theta_dot ** 2 * sin) / total_mass
        theta_acc = (self.gravity * sin - cos * temp) / (
            self.half_length * (4.0 / 3.0 - self.pole_mass * cos ** 2 / total_mass))
        x_acc = temp - pml * theta_acc * cos / total_mass
        self.state = np.stack([x + self.tau * x_dot, x_dot + self.tau * x_acc,
                               theta + self.tau * theta_dot, theta_dot + self.tau * theta_acc], 1)
        self.lengths += 1
        self.returns += 1.0
        x, theta = self.state[:, 0], self.state[:, 2]
        terminated = (x < -self.x_limit) | (x > self.x_limit) | (theta < -self.theta_limit) | \
                     (theta > self.theta_limit)
        done = terminated | (self.lengths >= self.max_steps)
        for e in np.nonzero(done)[0]:
            self.finished.append(self.returns[e])
            self.state[e] = self.rng.uniform(-0.05, 0.05, size=4)
            self.lengths[e] = 0
            self.returns[e] = 0.0
        return np.ones(self.n, dtype=np.float32), done.astype(np.float32)

    def mean_return(self, last=100):
        return float(self.np.mean(self.finished[-last:])) if self.finished else 0.0


def pytorch_worker(args):
    import numpy as np
    import torch
    import torch.nn as nn
    from torch.distributions.categorical import Categorical

    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    rng = np.random.default_rng(args.seed)

    envs_n, steps_n, total = 4, 128, args.total_steps
    batch, minibatch = envs_n * steps_n, envs_n * steps_n // 4
    updates = total // batch
    lr, gamma, lam, clip, ent_coef, vf_coef, max_norm, epochs = \
        2.5e-4, 0.99, 0.95, 0.2, 0.01, 0.5, 0.5, 4

    def layer_init(layer, std=np.sqrt(2), bias_const=0.0):
        torch.nn.init.orthogonal_(layer.weight, std)
        torch.nn.init.constant_(layer.bias, bias_const)
        return layer

    class Agent(nn.Module):
        def __init__(self):
            super().__init__()
            self.critic = nn.Sequential(layer_init(nn.Linear(4, 64)), nn.Tanh(),
                                        layer_init(nn.Linear(64, 64)), nn.Tanh(),
                                        layer_init(nn.Linear(64, 1), std=1.0))
            self.actor = nn.Sequential(layer_init(nn.Linear(4, 64)), nn.Tanh(),
                                       layer_init(nn.Linear(64, 64)), nn.Tanh(),
                                       layer_init(nn.Linear(64, 2), std=0.01))

        def get_value(self, x):
            return self.critic(x)

        def get_action_and_value(self, x, action=None):
            logits = self.actor(x)
            probs = Categorical(logits=logits)
            if action is None:
                action = probs.sample()
            return action, probs.log_prob(action), probs.entropy(), self.critic(x)

    envs = CartPoleVec(envs_n, rng)
    agent = Agent()
    optimizer = torch.optim.Adam(agent.parameters(), lr=lr, eps=1e-5)
    obs = torch.zeros((steps_n, envs_n, 4))
    actions = torch.zeros((steps_n, envs_n))
    logprobs = torch.zeros((steps_n, envs_n))
    rewards = torch.zeros((steps_n, envs_n))
    dones = torch.zeros((steps_n, envs_n))
    values = torch.zeros((steps_n, envs_n))

    print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} thread(s), {updates} updates",
          flush=True)
    global_step, solved, next_log = 0, False, args.log_every
    start, cpu_start = time.perf_counter(), time.process_time()
    next_obs = torch.tensor(envs.observations())
    next_done = torch.zeros(envs_n)
    for update in range(1, updates + 1):
        optimizer.param_groups[0]["lr"] = (1.0 - (update - 1.0) / updates) * lr
        for step in range(steps_n):
            global_step += envs_n
            obs[step] = next_obs
            dones[step] = next_done
            with torch.no_grad():
                action, logprob, _, value = agent.get_action_and_value(next_obs)
                values[step] = value.flatten()
            actions[step] = action
            logprobs[step] = logprob
            reward, done = envs.step(action.numpy())
            rewards[step] = torch.from_numpy(reward)
            next_obs, next_done = torch.tensor(envs.observations()), torch.from_numpy(done)

        with torch.no_grad():
            next_value = agent.get_value(next_obs).reshape(1, -1)
            advantages = torch.zeros_like(rewards)
            lastgaelam = 0
            for t in reversed(range(steps_n)):
                if t == steps_n - 1:
                    nextnonterminal, nextvalues = 1.0 - next_done, next_value
                else:
                    nextnonterminal, nextvalues = 1.0 - dones[t + 1], values[t + 1]
                delta = rewards[t] + gamma * nextvalues * nextnonterminal - values[t]
                advantages[t] = lastgaelam = delta + gamma * lam * nextnonterminal * lastgaelam
            returns = advantages + values

        b_obs, b_logprobs, b_actions = obs.reshape(-1, 4), logprobs.reshape(-1), actions.reshape(-1)
        b_advantages, b_returns, b_values = advantages.reshape(-1), returns.reshape(-1), values.reshape(-1)
        b_inds = np.arange(batch)
        clipfracs = []
        for epoch in range(epochs):
            np.random.shuffle(b_inds)
            for begin in range(0, batch, minibatch):
                mb = b_inds[begin:begin + minibatch]
                _, newlogprob, entropy, newvalue = agent.get_action_and_value(b_obs[mb], b_actions.long()[mb])
                logratio = newlogprob - b_logprobs[mb]
                ratio = logratio.exp()
                with torch.no_grad():
                    approx_kl = ((ratio - 1) - logratio).mean()
                    clipfracs += [((ratio - 1.0).abs() > clip).float().mean().item()]
                mb_adv = b_advantages[mb]
                mb_adv = (mb_adv - mb_adv.mean()) / (mb_adv.std() + 1e-8)
                pg_loss = torch.max(-mb_adv * ratio, -mb_adv * torch.clamp(ratio, 1 - clip, 1 + clip)).mean()
                newvalue = newvalue.view(-1)
                v_unclipped = (newvalue - b_returns[mb]) ** 2
                v_clipped = b_values[mb] + torch.clamp(newvalue - b_values[mb], -clip, clip)
                v_loss = 0.5 * torch.max(v_unclipped, (v_clipped - b_returns[mb]) ** 2).mean()
                loss = pg_loss - ent_coef * entropy.mean() + v_loss * vf_coef
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), max_norm)
                optimizer.step()

        mean_return = envs.mean_return()
        if not solved and len(envs.finished) >= 100 and mean_return >= 475:
            solved = True
            print(f"solved: the mean return of the last 100 episodes reached 475 at step {global_step}",
                  flush=True)
        if global_step >= next_log or update == updates:
            next_log += args.log_every
            print(f"steps {global_step:7d}  return {mean_return:6.1f} (last 100 of {len(envs.finished)} "
                  f"episodes)  approx_kl {approx_kl.item():.1e}  clipfrac {np.mean(clipfracs):.3f}  "
                  f"sps {global_step / (time.perf_counter() - start):.0f}", flush=True)
    seconds = time.perf_counter() - start
    print(f"time: cpu time {time.process_time() - cpu_start:.2f} s", flush=True)
    print(f"final: steps {global_step}, mean return (last 100 episodes) {envs.mean_return():.1f}, "
          f"time {seconds:.1f} s", flush=True)


# ---------------------------------------------------------------- both, side by side

def parse(name, text):
    """(steps, final mean return, wall seconds, cpu seconds, step solved at or "never")."""
    final, cpu, solved = FINAL.search(text), CPU.search(text), SOLVED.search(text)
    if not final or not cpu:
        sys.exit(f"{name}: no final line or cpu time in its output")
    return int(final[1]), float(final[2]), float(final[3]), float(cpu[1]), solved[1] if solved else "never"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--total-steps", type=int, default=500000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=1,
                        help="run both sides this many times, alternating, and report the median ratio")
    parser.add_argument("--log-every", type=int, default=51200, help="steps between progress lines")
    parser.add_argument("--tapegrad", default=os.path.join(ROOT, "build", "examples", "ppo", "ppo"),
                        help="the built example (default: build/examples/ppo/ppo)")
    parser.add_argument("--coretype", help="set OPENBLAS_CORETYPE (e.g. SkylakeX, Haswell) for both "
                        "sides; by default both inherit this environment's")
    parser.add_argument("--only", choices=["tapegrad", "pytorch"], help="run one side only")
    parser.add_argument("--pytorch-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.pytorch_worker:
        return pytorch_worker(args)

    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    if args.coretype:
        env["OPENBLAS_CORETYPE"] = args.coretype
    print(f"PPO on CartPole-v1, {args.total_steps} steps, seed {args.seed}, one thread each, "
          f"OPENBLAS_CORETYPE={env.get('OPENBLAS_CORETYPE', '(unset: OpenBLAS detects the CPU)')}; "
          f"load average {load_average()}")
    rounds = []
    for r in range(1, args.rounds + 1):
        results = {}
        if args.only != "pytorch":
            print(f"round {r}, tapegrad: {args.tapegrad}")
            with tempfile.TemporaryDirectory(prefix="ppo-bench-") as out:
                text, code = run_child([args.tapegrad, "--total-steps", str(args.total_steps), "--seed",
                                        str(args.seed), "--threads", "1", "--log-every",
                                        str(args.log_every), "--out", out], env)
            if code != 0:
                sys.exit(f"tapegrad failed with exit status {code}")
            results["tapegrad"] = parse("tapegrad", text)
        if args.only != "tapegrad":
            print(f"round {r}, pytorch:")
            worker = [sys.executable, os.path.abspath(__file__), "--pytorch-worker"] + \
                     [a for a in sys.argv[1:] if a != "--pytorch-worker"]
            text, code = run_child(worker, env)
            if code != 0:
                sys.exit(f"the PyTorch worker failed with exit status {code}")
            results["pytorch"] = parse("pytorch", text)
        rounds.append(results)
        print(f"load average: {load_average()}")

    print()
    for r, results in enumerate(rounds, 1):
        for name, (steps, ret, wall, cpu, solved_at) in results.items():
            print(f"round {r} {name:>8}: {steps} steps in {wall:.1f} s ({steps / wall:.0f} steps/s, "
                  f"cpu {cpu:.1f} s), mean return of the last 100 episodes {ret:.1f}, solved (>= 475) "
                  f"at step {solved_at}")
        if len(results) == 2:
            print(f"round {r} ratio pytorch / tapegrad: wall time {results['pytorch'][2] / results['tapegrad'][2]:.1f}x, "
                  f"cpu time {results['pytorch'][3] / results['tapegrad'][3]:.1f}x")
    if all(len(results) == 2 for results in rounds):
        wall = statistics.median(x["pytorch"][2] / x["tapegrad"][2] for x in rounds)
        cpu = statistics.median(x["pytorch"][3] / x["tapegrad"][3] for x in rounds)
        print(f"tapegrad is {wall:.1f}x faster than PyTorch in wall time, {cpu:.1f}x in cpu time "
              f"(median over {len(rounds)} round(s))")
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    main()
