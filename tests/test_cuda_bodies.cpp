// tests/test_cuda_bodies.cpp — the bodies of the CUDA kernels (src/cuda/kernel_bodies.h) run on
// the CPU and compared with the CPU backend, so that their logic is tested on every machine, GPU
// or not: the row bodies with a group of std::threads and a barrier standing in for a CUDA block
// (each thread owns the elements a GPU thread would and the group reduces as CUB would, in some
// fixed order), and with one thread per row as the strided kernels run them; the reduction
// accumulators with rows split into pieces; the deterministic scatter-add's sorted runs; the
// broadcast walk's offsets. The CUDA test binary (tests/test_cuda.cpp) runs the real kernels.
#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <limits>
#include <mutex>
#include <numeric>
#include <thread>

#include "../src/cuda/kernel_bodies.h"
#include "../src/kernels/broadcast_walk.h"
#include "helpers.h"

using namespace tg;
using tgtest::random_input;
namespace body = tg::cuda;
namespace k = tg::kernels;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// `size` std::threads that run one body together, as the threads of a CUDA block do.
class HostBlock {
 public:
  explicit HostBlock(int size) : size_(size), slots_(size * 64) {}

  // What BlockRow is on a GPU: rank, size, and a reduction every thread joins.
  struct Row {
    HostBlock* block;
    int rank;
    int64_t thread() const { return rank; }
    int64_t threads() const { return block->size_; }
    template <class V, class Op> V reduce_all(V mine, Op op) const {
      static_assert(sizeof(V) <= 64, "slot too small");
      std::memcpy(&block->slots_[rank * 64], &mine, sizeof(V));
      block->barrier();
      V total;
      std::memcpy(&total, &block->slots_[0], sizeof(V));
      for (int t = 1; t < block->size_; ++t) {  // a fixed order: every thread gets the same bits
        V other;
        std::memcpy(&other, &block->slots_[t * 64], sizeof(V));
        total = op(total, other);
      }
      block->barrier();  // the slots are reused by the next reduction
      return total;
    }
  };

  // Runs body(row) on every thread of the block and waits for all of them.
  template <class Body> void run(Body body) {
    std::vector<std::thread> threads;
    for (int t = 0; t < size_; ++t)
      threads.emplace_back([this, t, &body] {
        Row row{this, t};
        body(row);
      });
    for (std::thread& t : threads) t.join();
  }

 private:
  void barrier() {
    std::unique_lock<std::mutex> lock(mutex_);
    const int generation = generation_;
    if (++waiting_ == size_) {
      waiting_ = 0;
      ++generation_;
      wake_.notify_all();
      return;
    }
    wake_.wait(lock, [&] { return generation_ != generation; });
  }

  int size_;
  std::vector<unsigned char> slots_;
  std::mutex mutex_;
  std::condition_variable wake_;
  int waiting_ = 0, generation_ = 0;
};

Backend& cpu() { return backend_for(Device::cpu_device()); }

// Rows that exercise the rules: random, a max in the last tile, all -inf, a NaN, a +inf.
std::vector<double> test_rows(int64_t rows, int64_t n, unsigned seed) {
  std::vector<double> v = random_input({rows, n}, seed, -8, 8).to_vector();
  if (rows > 1) v[2 * n - 1] = 20;
  if (rows > 2)
    for (int64_t j = 0; j < n; ++j) v[2 * n + j] = -kInf;
  if (rows > 3) v[4 * n - 1] = std::nan("");
  if (rows > 4) v[4 * n + n / 2] = kInf;
  return v;
}

// Equal within tolerance, with NaN and ±inf in the same places (one assertion; a failure names
// the first element that differs).
void require_close(const std::vector<double>& got, const std::vector<double>& expected,
                   double tolerance) {
  REQUIRE(got.size() == expected.size());
  for (size_t i = 0; i < got.size(); ++i) {
    const bool same = std::isnan(expected[i]) ? std::isnan(got[i])
                      : std::isinf(expected[i])
                          ? got[i] == expected[i]
                          : std::fabs(got[i] - expected[i]) <= tolerance * (1 + std::fabs(expected[i]));
    if (same) continue;
    INFO("element " << i << ": got " << got[i] << ", expected " << expected[i]);
    FAIL("values differ");
  }
  SUCCEED();
}

Backend::SoftmaxLayout layout_of(int64_t outer, int64_t n, int64_t inner, double temperature) {
  Backend::SoftmaxLayout layout;
  layout.outer = outer, layout.n = n, layout.inner = inner, layout.temperature = temperature;
  return layout;
}

}  // namespace

TEST_CASE("CUDA row bodies (block of threads and one thread per row) match the CPU's softmax family",
          "[cuda_bodies]") {
  const double inv_t = 1 / 0.7;
  for (int threads : {1, 3, 8}) {
    for (int64_t n : {1, 5, 37, 1500}) {
      INFO("n = " << n << ", " << threads << " threads");
      const int64_t rows = 5;
      std::vector<double> x = test_rows(rows, n, 50), q = test_rows(rows, n, 51);
      std::vector<double> g = random_input({rows, n}, 52).to_vector();
      std::vector<double> target = softmax(random_input({rows, n}, 53).detach(), 1).to_vector();
      const Backend::SoftmaxLayout layout = layout_of(rows, n, 1, 0.7);
      HostBlock block(threads);
      for (bool log : {false, true}) {
        std::vector<double> y(rows * n), y_cpu(rows * n), gx(rows * n), gx_cpu(rows * n);
        block.run([&](HostBlock::Row& row) {
          for (int64_t r = 0; r < rows; ++r)
            body::softmax_row(row, log, &x[r * n], &y[r * n], n, int64_t(1), inv_t);
        });
        auto kind = log ? Backend::SoftmaxKind::log_softmax : Backend::SoftmaxKind::softmax;
        cpu().softmax(kind, DType::f64, x.data(), y_cpu.data(), layout);
        require_close(y, y_cpu, 1e-13);
        block.run([&](HostBlock::Row& row) {
          for (int64_t r = 0; r < rows; ++r)
            body::softmax_backward_row(row, log, &g[r * n], &y_cpu[r * n], &gx[r * n], n,
                                       int64_t(1), inv_t);
        });
        cpu().softmax_backward(kind, DType::f64, g.data(), y_cpu.data(), gx_cpu.data(), layout);
        require_close(gx, gx_cpu, 1e-12);
      }
      for (bool uniform : {false, true}) {
        std::vector<double> kl(rows), stats(4 * rows), kl_cpu(rows), stats_cpu(4 * rows);
        const double* qp = uniform ? nullptr : q.data();
        block.run([&](HostBlock::Row& row) {
          for (int64_t r = 0; r < rows; ++r)
            body::kl_logits_row(row, &x[r * n], qp ? qp + r * n : nullptr, &kl[r], &stats[4 * r],
                                n, int64_t(1), inv_t);
        });
        cpu().kl_logits(DType::f64, x.data(), qp, kl_cpu.data(), stats_cpu.data(), layout);
        require_close(kl, kl_cpu, 1e-12);
        require_close(stats, stats_cpu, 1e-13);
        // The backward, one thread per element from the saved stats.
        std::vector<double> gp(rows * n), gq(rows * n), gp_cpu(rows * n), gq_cpu(rows * n);
        for (int64_t flat = 0; flat < rows * n; ++flat) {
          body::RowElement e = body::row_element(flat, n, 1);
          body::kl_logits_grads(g[e.d], x[flat], qp ? qp + flat : nullptr, kl_cpu[e.d],
                                &stats_cpu[4 * e.d], inv_t, &gp[flat], qp ? &gq[flat] : nullptr);
        }
        cpu().kl_logits_backward(DType::f64, g.data(), x.data(), qp, kl_cpu.data(),
                                 stats_cpu.data(), gp_cpu.data(), qp ? gq_cpu.data() : nullptr,
                                 layout);
        require_close(gp, gp_cpu, 1e-12);
        if (qp) require_close(gq, gq_cpu, 1e-12);
      }
      for (double eps : {0.0, 0.1}) {
        std::vector<int64_t> labels = {0, n - 1, n / 2, 0, n / 3};
        for (bool probs : {false, true}) {
          const double* t = probs ? target.data() : nullptr;
          std::vector<double> loss(rows), st(2 * rows), loss_cpu(rows), st_cpu(2 * rows);
          block.run([&](HostBlock::Row& row) {
            for (int64_t r = 0; r < rows; ++r)
              body::cross_entropy_row(row, &x[r * n], probs ? int64_t(-1) : labels[r],
                                      t ? t + r * n : nullptr, eps, &loss[r], &st[2 * r], n,
                                      int64_t(1), inv_t);
          });
          cpu().cross_entropy(DType::f64, x.data(), probs ? nullptr : labels.data(), t, eps,
                              loss_cpu.data(), st_cpu.data(), layout);
          require_close(loss, loss_cpu, 1e-12);
          require_close(st, st_cpu, 1e-13);
          std::vector<double> gl(rows * n), gt(rows * n), gl_cpu(rows * n), gt_cpu(rows * n);
          if (probs) {
            block.run([&](HostBlock::Row& row) {
              for (int64_t r = 0; r < rows; ++r)
                body::cross_entropy_probs_backward_row(row, g[r], &x[r * n], t + r * n, eps,
                                                       k::RowStats<double>{st_cpu[2 * r], st_cpu[2 * r + 1]},
                                                       &gl[r * n], &gt[r * n], n, int64_t(1), inv_t);
            });
          } else {
            for (int64_t flat = 0; flat < rows * n; ++flat) {
              body::RowElement e = body::row_element(flat, n, 1);
              gl[flat] = body::cross_entropy_label_grad(
                  g[e.d], x[flat], e.j, labels[e.d],
                  k::RowStats<double>{st_cpu[2 * e.d], st_cpu[2 * e.d + 1]}, eps, 1.0 / n, inv_t);
            }
          }
          cpu().cross_entropy_backward(DType::f64, g.data(), x.data(),
                                       probs ? nullptr : labels.data(), t, eps, st_cpu.data(),
                                       gl_cpu.data(), probs ? gt_cpu.data() : nullptr, layout);
          require_close(gl, gl_cpu, 1e-12);
          if (probs) require_close(gt, gt_cpu, 1e-12);
        }
      }
    }
  }
}

TEST_CASE("CUDA row bodies: a label outside [0, n) gives NaN, never a read out of bounds",
          "[cuda_bodies]") {
  std::vector<double> x = {1, 2, 3};
  double loss = 0, stats[2];
  body::SingleThread single;
  for (int64_t label : {int64_t(3), int64_t(-1), int64_t(1) << 40}) {
    body::cross_entropy_row(single, x.data(), label, static_cast<const double*>(nullptr), 0.0,
                            &loss, stats, 3, int64_t(1), 1.0);
    REQUIRE(std::isnan(loss));
  }
}

TEST_CASE("CUDA strided row bodies (one thread per distribution) match the CPU's strided path",
          "[cuda_bodies]") {
  // [outer, n, inner] = [2, 7, 3]: each distribution steps by 3.
  const int64_t outer = 2, n = 7, inner = 3;
  std::vector<double> x = random_input({outer, n, inner}, 60, -5, 5).to_vector();
  x[3] = -kInf;
  const Backend::SoftmaxLayout layout = layout_of(outer, n, inner, 1.5);
  std::vector<double> y(x.size()), y_cpu(x.size());
  body::SingleThread single;
  for (int64_t d = 0; d < outer * inner; ++d) {
    const int64_t start = (d / inner) * n * inner + d % inner;
    body::softmax_row(single, true, &x[start], &y[start], n, inner, 1 / 1.5);
  }
  cpu().softmax(Backend::SoftmaxKind::log_softmax, DType::f64, x.data(), y_cpu.data(), layout);
  require_close(y, y_cpu, 1e-13);
  for (int64_t flat = 0; flat < outer * n * inner; ++flat) {
    body::RowElement e = body::row_element(flat, n, inner);
    REQUIRE(e.d == (flat / (n * inner)) * inner + flat % inner);
    REQUIRE(e.j == (flat / inner) % n);
  }
}

TEST_CASE("CUDA reduction accumulators, whole rows and rows split into pieces, match the CPU",
          "[cuda_bodies]") {
  const int64_t rows = 4, n = 3001, piece = 700;
  std::vector<double> x = random_input({rows, n}, 70, -30, 30).to_vector();
  x[n + 1234] = 99;                     // row 1: a max inside a late piece, ties below
  x[n + 2999] = 99;
  x[2 * n + 5] = std::nan("");          // row 2: NaN
  for (int64_t j = 0; j < n; ++j) x[3 * n + j] = -kInf;  // row 3: all -inf
  HostBlock block(8);
  auto check = [&](ReduceOp op, auto reduce) {
    using R = decltype(reduce);
    std::vector<double> whole(rows), split(rows), expected(rows);
    cpu().reduce(op, DType::f64, x.data(), expected.data(), rows, n, 1);
    block.run([&](HostBlock::Row& row) {
      for (int64_t r = 0; r < rows; ++r) {
        auto acc = body::reduce_row(row, reduce, &x[r * n], n, int64_t(1), int64_t(0));
        if (row.thread() == 0) whole[r] = reduce.finish(acc);
        // The pieces kernel, then the merge kernel.
        std::vector<typename R::Acc> pieces;
        for (int64_t begin = 0; begin < n; begin += piece)
          pieces.push_back(body::reduce_row(row, reduce, &x[r * n + begin],
                                            std::min(piece, n - begin), int64_t(1), begin));
        auto merged = body::merge_accumulators(row, reduce, pieces.data(), int64_t(pieces.size()));
        if (row.thread() == 0) split[r] = reduce.finish(merged);
      }
    });
    require_close(whole, expected, 1e-13);
    require_close(split, expected, 1e-13);
  };
  check(ReduceOp::sum, body::SumReduce<double>{1.0});
  check(ReduceOp::mean, body::SumReduce<double>{k::mean_scale(n)});
  check(ReduceOp::max, body::ExtremeReduce<double, k::Maximum>{-kInf});
  check(ReduceOp::min, body::ExtremeReduce<double, k::Minimum>{kInf});
  check(ReduceOp::logsumexp, body::LogSumExpReduce<double>{});
  // argmax: the first 99 in row 1, the NaN in row 2, index 0 of the all -inf row 3.
  std::vector<int64_t> expected(rows), split(rows);
  cpu().argmax(DType::f64, x.data(), expected.data(), rows, n, 1);
  REQUIRE(expected[1] == 1234);
  REQUIRE(expected[2] == 5);
  block.run([&](HostBlock::Row& row) {
    for (int64_t r = 0; r < rows; ++r) {
      std::vector<k::ArgBest<double>> pieces;
      for (int64_t begin = 0; begin < n; begin += piece)
        pieces.push_back(body::reduce_row(row, body::ArgmaxReduce<double>{}, &x[r * n + begin],
                                          std::min(piece, n - begin), int64_t(1), begin));
      auto merged = body::merge_accumulators(row, body::ArgmaxReduce<double>{}, pieces.data(),
                                             int64_t(pieces.size()));
      if (row.thread() == 0) split[r] = merged.index;
    }
  });
  REQUIRE(split == expected);
}

TEST_CASE("CUDA scatter-add's sorted runs reproduce the CPU's scatter_add bit for bit",
          "[cuda_bodies]") {
  // gather's gradient over [outer, k, inner] into [outer, n, inner], many repeated indices.
  const int64_t outer = 3, n = 5, kk = 40, inner = 4;
  std::vector<float> src(outer * kk * inner);
  for (size_t i = 0; i < src.size(); ++i) src[i] = std::sin(0.37f * i) * 1000.0f + 1e-3f * i;
  std::vector<int64_t> index(src.size()), shared(kk);
  for (size_t i = 0; i < index.size(); ++i) index[i] = (i * 7 + i / 9) % n;
  for (int64_t j = 0; j < kk; ++j) shared[j] = (j * j) % n;
  for (bool shared_index : {false, true}) {
    std::vector<float> out(outer * n * inner, 0.5f), out_cpu = out;
    const int64_t count = shared_index ? kk : int64_t(index.size());
    std::vector<int64_t> keys(count), positions(count);
    for (int64_t flat = 0; flat < count; ++flat) {  // the keys kernels
      if (shared_index) {
        keys[flat] = body::shared_scatter_key(shared[flat], n);
      } else {
        const int64_t o = flat / (kk * inner), i = flat % inner;
        keys[flat] = body::element_scatter_key(o, i, index[flat], n, inner);
      }
      positions[flat] = flat;
    }
    std::stable_sort(positions.begin(), positions.end(),
                     [&](int64_t a, int64_t b) { return keys[a] < keys[b]; });  // CUB's radix sort
    std::vector<int64_t> sorted(count);
    for (int64_t s = 0; s < count; ++s) sorted[s] = keys[positions[s]];
    // The runs kernels, threads in a scrambled order (their outputs do not overlap).
    std::vector<int64_t> threads(shared_index ? outer * kk * inner : count);
    std::iota(threads.begin(), threads.end(), 0);
    std::reverse(threads.begin(), threads.end());
    for (int64_t flat : threads) {
      if (shared_index) {
        const int64_t o = flat / (kk * inner), s = (flat / inner) % kk, i = flat % inner;
        if (!body::starts_run(sorted.data(), s)) continue;
        body::add_run(sorted.data(), kk, s, src.data(),
                      [&](int64_t e) { return (o * kk + positions[e]) * inner + i; }, out.data(),
                      (o * n + sorted[s]) * inner + i);
      } else {
        if (!body::starts_run(sorted.data(), flat)) continue;
        body::add_run(sorted.data(), count, flat, src.data(),
                      [&](int64_t e) { return positions[e]; }, out.data(),
                      body::element_scatter_target(sorted[flat], n, inner));
      }
    }
    cpu().scatter_add(DType::f32, src.data(), shared_index ? shared.data() : index.data(),
                      out_cpu.data(), outer, n, kk, inner, shared_index);
    REQUIRE(std::memcmp(out.data(), out_cpu.data(), out.size() * sizeof(float)) == 0);
  }
  // A bad index gets key -1: sorted first and never the start of a run.
  REQUIRE(body::shared_scatter_key(5, 5) == -1);
  REQUIRE(body::element_scatter_key(0, 0, -2, 5, 1) == -1);
  int64_t keys[] = {-1, -1, 2};
  REQUIRE_FALSE(body::starts_run(keys, 0));
  REQUIRE(body::starts_run(keys, 2));
}

TEST_CASE("the broadcast walk's per-element offsets match the layout's strides", "[cuda_bodies]") {
  for (const std::vector<Shape>& shapes :
       {std::vector<Shape>{{4, 3, 5}, {3, 1}}, {{2, 1, 6}, {1, 7, 6}}, {{}, {3}}, {{8}, {8}},
        {{2, 3, 4, 5}, {1, 3, 1, 5}}}) {
    Shape out = broadcast_shapes(shapes[0], shapes[1], "test");
    BroadcastLayout layout;
    layout.shape = out;
    int rank = out.rank();
    for (const Shape& in : shapes) {
      int64_t contiguous[kMaxRank];
      in.strides(contiguous);
      for (int d = 0; d < rank; ++d) {
        int di = d - (rank - in.rank());
        layout.strides[layout.inputs][d] = (di < 0 || in[di] == 1) ? 0 : contiguous[di];
      }
      ++layout.inputs;
    }
    k::BroadcastWalk w = k::collapse_walk(layout);
    int64_t out_strides[kMaxRank];
    out.strides(out_strides);
    for (int64_t flat = 0; flat < out.numel(); ++flat) {
      int64_t offsets[2];
      k::walk_offsets<2>(w, flat, offsets);
      int64_t expected[2] = {0, 0};
      for (int d = 0; d < rank; ++d) {
        int64_t index = (flat / out_strides[d]) % out[d];
        for (int i = 0; i < 2; ++i) expected[i] += index * layout.strides[i][d];
      }
      REQUIRE(offsets[0] == expected[0]);
      REQUIRE(offsets[1] == expected[1]);
    }
  }
}
