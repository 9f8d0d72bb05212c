// src/cpu/thread_pool.cpp — see thread_pool.h.
#include "thread_pool.h"

#include <pthread.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define TG_CPU_RELAX() _mm_pause()
#else
#define TG_CPU_RELAX() std::this_thread::yield()
#endif

namespace tg::cpu {

namespace {

// A spin of about `microseconds` of wall time. Bounded by the clock, not by a count of pause
// instructions: `pause` takes about 10 cycles on some x86 CPUs and 140 on others, so a fixed
// count spun 15 times longer on a recent Intel CPU than on AMD, taking the core from OpenBLAS's
// threads between kernels. The clock is read once every 64 pauses.
class Spin {
 public:
  explicit Spin(int microseconds)
      : deadline_(std::chrono::steady_clock::now() + std::chrono::microseconds(microseconds)) {}
  // Pauses once; false when the time is up.
  bool again() {
    TG_CPU_RELAX();
    if (++count_ % 64 != 0) return true;
    if (!expired_) expired_ = std::chrono::steady_clock::now() >= deadline_;
    return !expired_;
  }

 private:
  std::chrono::steady_clock::time_point deadline_;
  unsigned count_ = 0;
  bool expired_ = false;
};

// Waits for done(): spins briefly, then yields (on a loaded machine the thread it waits for may
// need this CPU).
template <class Done>
void wait_until(Done done) {
  Spin spin(20);
  while (!done())
    if (!spin.again()) std::this_thread::yield();
}

// One job at a time (the CPU backend runs one kernel at a time per calling thread; a second
// caller waits for the first job to finish). Workers sleep on a condition variable between jobs,
// after spinning briefly, so back-to-back kernels find them awake.
class Pool {
 public:
  explicit Pool(int workers) {
    for (int i = 0; i < workers; ++i) threads_.emplace_back([this] { work(); });
  }
  ~Pool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
      ++generation_;
    }
    wake_.notify_all();
    for (auto& t : threads_) t.join();
  }
  int workers() const { return static_cast<int>(threads_.size()); }

  void run(int64_t tasks, detail::TaskFunction function, void* context) {
    std::lock_guard<std::mutex> job_lock(job_mutex_);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      function_ = function;
      context_ = context;
      tasks_ = tasks;
      next_.store(0, std::memory_order_relaxed);
      pending_.store(tasks, std::memory_order_relaxed);
      open_ = true;
      generation_atomic_.store(generation_ + 1, std::memory_order_release);
      ++generation_;
    }
    wake_.notify_all();
    take_tasks(function, context, tasks);
    // Wait for the tasks other threads took, then close the job: a worker that wakes later does
    // not join it, and every worker that joined has left before the next job is set up.
    wait_until([&] { return pending_.load(std::memory_order_acquire) == 0; });
    {
      std::lock_guard<std::mutex> lock(mutex_);
      open_ = false;
    }
    wait_until([&] { return active_.load(std::memory_order_acquire) == 0; });
  }

 private:
  void take_tasks(detail::TaskFunction function, void* context, int64_t tasks) {
    for (;;) {
      const int64_t t = next_.fetch_add(1, std::memory_order_relaxed);
      if (t >= tasks) return;
      detail::in_task = true;
      function(context, t);
      detail::in_task = false;
      pending_.fetch_sub(1, std::memory_order_acq_rel);
    }
  }

  void work() {
    uint64_t seen = 0;
    for (;;) {
      // Spin a little (10 µs: back-to-back kernels follow sooner; a gemm in between takes longer,
      // and a spinning worker would take a core from OpenBLAS) for the next job before sleeping.
      for (Spin spin(10); generation_atomic_.load(std::memory_order_acquire) == seen;)
        if (!spin.again()) break;
      detail::TaskFunction function;
      void* context;
      int64_t tasks;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return generation_ != seen; });
        seen = generation_;
        if (stop_) return;
        if (!open_) continue;
        active_.fetch_add(1, std::memory_order_relaxed);
        function = function_;
        context = context_;
        tasks = tasks_;
      }
      take_tasks(function, context, tasks);
      active_.fetch_sub(1, std::memory_order_release);
    }
  }

  std::vector<std::thread> threads_;
  std::mutex job_mutex_;  // one job at a time
  std::mutex mutex_;
  std::condition_variable wake_;
  uint64_t generation_ = 0;
  std::atomic<uint64_t> generation_atomic_{0};
  bool stop_ = false;
  bool open_ = false;                // the current job still takes workers
  std::atomic<int> active_{0};       // workers inside the current job
  detail::TaskFunction function_ = nullptr;
  void* context_ = nullptr;
  int64_t tasks_ = 0;
  std::atomic<int64_t> next_{0};
  std::atomic<int64_t> pending_{0};
};

int default_threads() {
  const unsigned n = std::thread::hardware_concurrency();
  return n ? static_cast<int>(n) : 1;
}

std::atomic<int> g_threads{default_threads()};
std::mutex g_pool_mutex;
Pool* g_pool = nullptr;  // workers = g_threads - 1, created on first use

// In a forked child the parent's workers do not exist: forget the pool (its threads, mutexes and
// memory belong to the parent's image; it is leaked, never joined) and build a new one on demand.
void forget_pool_in_child() {
  g_pool = nullptr;
  new (&g_pool_mutex) std::mutex();
}

Pool* pool_for(int threads) {
  static const bool registered = [] {
    pthread_atfork(nullptr, nullptr, forget_pool_in_child);
    return true;
  }();
  (void)registered;
  std::lock_guard<std::mutex> lock(g_pool_mutex);
  if (g_pool && g_pool->workers() != threads - 1) {
    delete g_pool;
    g_pool = nullptr;
  }
  if (!g_pool) g_pool = new Pool(threads - 1);
  return g_pool;
}

}  // namespace

thread_local bool detail::in_task = false;

int kernel_threads() { return g_threads.load(std::memory_order_relaxed); }

void set_kernel_threads(int threads) {
  const int n = threads <= 0 ? default_threads() : threads;
  g_threads.store(n, std::memory_order_relaxed);
  std::lock_guard<std::mutex> lock(g_pool_mutex);
  if (g_pool && g_pool->workers() != n - 1) {
    delete g_pool;
    g_pool = nullptr;
  }
}

void detail::run_tasks(int64_t tasks, TaskFunction function, void* context) {
  pool_for(kernel_threads())->run(tasks, function, context);
}

}  // namespace tg::cpu
