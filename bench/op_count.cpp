// bench/op_count.cpp — bench/op_overhead.cpp's chain (x * 0.999, then tanh, 1000 ops on 64
// floats, recorded, then backward) run a fixed number of times, for counting the instructions
// it executes under callgrind: a count that other processes on a shared machine cannot disturb,
// unlike a time. The difference of two counts (N and 2N iterations) over N is the cost of one
// iteration without the program's start-up. Valgrind decodes no AVX-512, so build it with
// -Dnative=false (docs/benchmarks.md has the commands).
#include <cstdlib>
#include <iostream>

#include "tapegrad/tapegrad.h"

int main(int argc, char** argv) {
  const int iterations = argc > 1 ? std::atoi(argv[1]) : 100;
  tg::set_num_threads(1);
  tg::Tensor x = tg::full({64}, 0.5).set_requires_grad();
  double checksum = 0;
  for (int it = 0; it < iterations; ++it) {
    tg::Tensor y = x;
    for (int i = 0; i < 500; ++i) y = tg::tanh(y * 0.999);
    tg::backward(y, tg::ones({64}));
    checksum += x.grad().to_vector()[0];
    x.zero_grad();
  }
  std::cout << iterations << " iterations, checksum " << checksum << "\n";
}
