// bench/tape_memory.cpp — what an evaluation loop that forgets NoGrad costs: N forward passes of
// the VAE (examples/vae) on a batch, recorded on the tape, each result dropped without backward.
// Prints the CPU backend's bytes in use and the tape's length after each checkpoint pass count.
// (docs/benchmarks.md §tape memory has the figures; a plain program, no Google Benchmark.)
//
//   build/bench/tape_memory [batch] [checkpoints...]      default: 1000  10 20 30 1000
#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <vector>

#include "../examples/vae/vae.h"
#include "tapegrad/tapegrad.h"

int main(int argc, char** argv) {
  const int64_t batch = argc > 1 ? std::atoll(argv[1]) : 1000;
  std::vector<int> checkpoints;
  for (int i = 2; i < argc; ++i) checkpoints.push_back(std::atoi(argv[i]));
  if (checkpoints.empty()) checkpoints = {10, 20, 30, 1000};
  tg::set_num_threads(1);

  tg::Generator init(1), noise(2), data(3);
  vae::VAE model(vae::Config{}, init);
  tg::Tensor x = tg::rand({batch, 784}, data);
  tg::Backend& cpu = tg::backend_for(tg::Device::cpu_device());
  std::cout << "passes  MB in use  tape entries   (VAE forward, batch " << batch
            << ", no NoGrad, no backward)\n";
  int done = 0;
  for (int target : checkpoints) {
    for (; done < target; ++done) {
      vae::VAE::Output out = model.forward(x, noise);
      tg::Tensor loss = vae::loss(out, x);
      (void)loss;  // dropped: an evaluation loop that only reads the loss would do the same
    }
    std::cout << std::setw(6) << done << std::setw(11) << std::fixed << std::setprecision(1)
              << cpu.memory_stats().bytes_in_use / 1e6 << std::setw(14) << tg::tape().size()
              << "\n";
  }
}
