// src/cpu/thread_pool.h — the CPU kernels' threads: a small persistent pool that splits a range
// of work into fixed tasks.
//
// Results never depend on the thread count: a kernel is cut into tasks by its size alone (whole
// rows, or fixed blocks of elements), each task writes only its own outputs, and partial sums are
// combined by the caller in task order. Small kernels never reach the pool (the callers' grain
// sizes), so they pay one comparison and no wake-up. tg::set_num_threads() sizes the pool along
// with OpenBLAS's.
//
// The pool survives fork(): the child, which has none of the parent's threads, gets a fresh pool
// on its first parallel kernel (pthread_atfork), and until then runs everything on one thread.
#pragma once

#include <cstdint>
#include <type_traits>

namespace tg::cpu {

// The size of one piece of work for the threads, in elements: a kernel over at least two pieces
// (32k elements) is split over the pool, a smaller one runs on the calling thread, where waking
// threads would cost more than it saves.
constexpr int64_t kParallelGrain = 16384;

// The grain, for parallel_for over units (rows, planes, channels) of `unit_work` elements each:
// as many whole units as make about kParallelGrain elements, and at least one.
inline int64_t units_per_grain(int64_t unit_work) {
  const int64_t units = kParallelGrain / (unit_work > 1 ? unit_work : 1);
  return units > 1 ? units : 1;
}

// Threads the kernels may use (>= 1).
int kernel_threads();
void set_kernel_threads(int threads);

namespace detail {
// True on a thread while it runs a task: a kernel called from inside a task runs serially.
extern thread_local bool in_task;
using TaskFunction = void (*)(void* context, int64_t task);
// Runs function(context, t) for t in [0, tasks), spread over the pool; returns when all ran.
void run_tasks(int64_t tasks, TaskFunction function, void* context);
}  // namespace detail

// Calls body(task) for every task in [0, tasks): on the calling thread alone when there is one
// task or one thread, else spread over the pool (the calling thread takes part). No allocation.
template <class Body>
void parallel_tasks(int64_t tasks, Body&& body) {
  if (tasks <= 1 || kernel_threads() <= 1 || detail::in_task) {
    for (int64_t t = 0; t < tasks; ++t) body(t);
    return;
  }
  using B = std::remove_reference_t<Body>;
  detail::run_tasks(
      tasks, [](void* context, int64_t task) { (*static_cast<B*>(context))(task); },
      const_cast<void*>(static_cast<const void*>(&body)));
}

// Splits [0, n) into pieces of `grain` (the last one shorter) and calls body(begin, end) for
// each; one piece (and no pool) when n < 2·grain. The pieces depend on n and grain only.
template <class Body>
void parallel_for(int64_t n, int64_t grain, Body&& body) {
  if (n < 2 * grain || kernel_threads() <= 1 || detail::in_task) {
    if (n > 0) body(int64_t(0), n);
    return;
  }
  const int64_t pieces = (n + grain - 1) / grain;
  parallel_tasks(pieces, [&](int64_t t) {
    const int64_t begin = t * grain;
    body(begin, begin + grain < n ? begin + grain : n);
  });
}

}  // namespace tg::cpu
