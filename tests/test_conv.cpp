// tests/test_conv.cpp — conv2d, max_pool2d and avg_pool2d: values against direct float64 loops
// over the defining sums (every stride / padding / dilation / groups combination tried),
// gradcheck and gradgradcheck, the argument errors, and the Conv2d / pool modules.
#include <cmath>
#include <limits>

#include "helpers.h"

using namespace tg;
using tgtest::random_input;
using tgtest::require_error;
using tgtest::require_values;

using Inputs = std::vector<Tensor>;

namespace {

struct Geometry {
  int64_t stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dil_h = 1, dil_w = 1, groups = 1;
};

int64_t out_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad, int64_t dilation) {
  return (in + 2 * pad - dilation * (kernel - 1) - 1) / stride + 1;
}

// y[b, o, oy, ox] = bias[o] + Σ_{c, i, j} w[o, c, i, j] · x[b, g·C/G + c, oy·s - p + i·d, ...]
std::vector<double> direct_conv2d(const Tensor& x, const Tensor& w, const Tensor& bias,
                                  const Geometry& g) {
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), wd = x.size(3);
  const int64_t o = w.size(0), cg = w.size(1), kh = w.size(2), kw = w.size(3);
  const int64_t oh = out_size(h, kh, g.stride_h, g.pad_h, g.dil_h);
  const int64_t ow = out_size(wd, kw, g.stride_w, g.pad_w, g.dil_w);
  std::vector<double> xv = x.to_vector(), wv = w.to_vector(), y;
  std::vector<double> bv = bias.defined() ? bias.to_vector() : std::vector<double>(o, 0.0);
  const int64_t per_group = o / g.groups;
  for (int64_t b = 0; b < n; ++b)
    for (int64_t oc = 0; oc < o; ++oc)
      for (int64_t oy = 0; oy < oh; ++oy)
        for (int64_t ox = 0; ox < ow; ++ox) {
          double s = bv[oc];
          const int64_t group = oc / per_group;
          for (int64_t ci = 0; ci < cg; ++ci)
            for (int64_t i = 0; i < kh; ++i)
              for (int64_t j = 0; j < kw; ++j) {
                int64_t yy = oy * g.stride_h - g.pad_h + i * g.dil_h;
                int64_t xx = ox * g.stride_w - g.pad_w + j * g.dil_w;
                if (yy < 0 || yy >= h || xx < 0 || xx >= wd) continue;
                int64_t channel = group * cg + ci;
                s += wv[((oc * cg + ci) * kh + i) * kw + j] *
                     xv[((b * c + channel) * h + yy) * wd + xx];
              }
          y.push_back(s);
        }
  (void)c;
  return y;
}

Tensor conv_with(const Inputs& in, const Geometry& g) {
  return conv2d(in[0], in[1], in.size() > 2 ? in[2] : Tensor(), {g.stride_h, g.stride_w},
                {g.pad_h, g.pad_w}, {g.dil_h, g.dil_w}, g.groups);
}

// Pools by direct loops: max (the largest pixel inside the image) or the mean over kh·kw
// (padding counts as 0).
std::vector<double> direct_pool(const Tensor& x, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                                int64_t ph, int64_t pw, bool max) {
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), wd = x.size(3);
  const int64_t oh = out_size(h, kh, sh, ph, 1), ow = out_size(wd, kw, sw, pw, 1);
  std::vector<double> xv = x.to_vector(), y;
  for (int64_t p = 0; p < n * c; ++p)
    for (int64_t oy = 0; oy < oh; ++oy)
      for (int64_t ox = 0; ox < ow; ++ox) {
        double acc = max ? -std::numeric_limits<double>::infinity() : 0.0;
        for (int64_t i = 0; i < kh; ++i)
          for (int64_t j = 0; j < kw; ++j) {
            int64_t yy = oy * sh - ph + i, xx = ox * sw - pw + j;
            if (yy < 0 || yy >= h || xx < 0 || xx >= wd) continue;
            double v = xv[(p * h + yy) * wd + xx];
            acc = max ? std::max(acc, v) : acc + v;
          }
        y.push_back(max ? acc : acc / double(kh * kw));
      }
  return y;
}

}  // namespace

// ---------------------------------------------------------------- conv2d

TEST_CASE("conv2d equals the direct sum for every stride, padding, dilation and groups",
          "[conv]") {
  struct Case {
    Shape x, w;
    Geometry g;
    bool bias;
  };
  const Case cases[] = {
      {{2, 3, 7, 6}, {4, 3, 3, 3}, {}, true},
      {{1, 2, 5, 5}, {3, 2, 1, 1}, {}, false},
      {{2, 3, 8, 7}, {2, 3, 3, 2}, {2, 3, 1, 0, 1, 1, 1}, true},   // strides 2x3, padding 1x0
      {{1, 2, 9, 9}, {2, 2, 3, 3}, {1, 1, 2, 2, 2, 3, 1}, true},   // dilation 2x3, padding 2
      {{2, 4, 6, 6}, {6, 2, 3, 3}, {1, 1, 1, 1, 1, 1, 2}, true},   // 2 groups
      {{1, 4, 5, 6}, {4, 1, 3, 3}, {2, 1, 1, 1, 1, 1, 4}, false},  // depthwise, stride 2x1
      {{3, 1, 28, 28}, {8, 1, 5, 5}, {1, 1, 2, 2, 1, 1, 1}, true}, // "same" padding, larger
  };
  unsigned seed = 0;
  for (const Case& k : cases) {
    for (DType dtype : {DType::f64, DType::f32}) {
      Tensor x = random_input(k.x, ++seed).to(dtype);
      Tensor w = random_input(k.w, ++seed).to(dtype);
      Tensor b = k.bias ? random_input({k.w[0]}, ++seed).to(dtype) : Tensor();
      Inputs in = {x, w};
      if (k.bias) in.push_back(b);
      Tensor y = conv_with(in, k.g);
      INFO("x " << k.x << " w " << k.w << " groups " << k.g.groups << " dtype " << dtype);
      REQUIRE(y.shape() == Shape{k.x[0], k.w[0], out_size(k.x[2], k.w[2], k.g.stride_h, k.g.pad_h, k.g.dil_h),
                                 out_size(k.x[3], k.w[3], k.g.stride_w, k.g.pad_w, k.g.dil_w)});
      require_values(y, direct_conv2d(x, w, b, k.g), dtype == DType::f64 ? 1e-12 : 1e-5);
    }
  }
}

TEST_CASE("conv2d matches PyTorch's numbers", "[conv]") {
  // torch.nn.functional.conv2d(x, w, b, stride=1, padding=1) with x = arange(16).view(1,1,4,4)/8,
  // w = [[[[1,0,-1],[2,0,-2],[1,0,-1]]]] (Sobel), b = [0.5]: recorded from PyTorch 1.13.
  std::vector<double> xs(16);
  for (int i = 0; i < 16; ++i) xs[i] = i / 8.0;
  Tensor x = tensor(xs, {1, 1, 4, 4});
  Tensor w = tensor({1, 0, -1, 2, 0, -2, 1, 0, -1}, {1, 1, 3, 3});
  Tensor y = conv2d(x, w, tensor({0.5}), 1, 1);
  require_values(y, {-0.375, -0.25, -0.25, 1.75, -2.0, -0.5, -0.5, 3.5, -4.0, -0.5, -0.5, 5.5,
                     -3.875, -0.25, -0.25, 5.25},
                 1e-6);
}

TEST_CASE("conv2d gradients pass gradcheck for stride, padding, dilation and groups",
          "[conv]") {
  const Geometry geometries[] = {
      {}, {2, 1, 1, 0, 1, 1, 1}, {1, 2, 2, 1, 2, 1, 1}, {1, 1, 1, 1, 1, 1, 2}};
  unsigned seed = 100;
  for (const Geometry& g : geometries) {
    Tensor x = random_input({2, 4, 6, 5}, ++seed);
    Tensor w = random_input({4, 4 / g.groups, 3, 2}, ++seed);
    Tensor b = random_input({4}, ++seed);
    INFO("stride " << g.stride_h << "x" << g.stride_w << " groups " << g.groups);
    REQUIRE_GRADCHECK([g](const Inputs& in) { return conv_with(in, g); }, {x, w, b});
  }
}

TEST_CASE("conv2d has second derivatives (gradgradcheck)", "[conv]") {
  Tensor x = random_input({1, 2, 5, 4}, 7);
  Tensor w = random_input({2, 1, 2, 3}, 8);
  Tensor b = random_input({2}, 9);
  Geometry g{2, 1, 1, 1, 1, 2, 2};
  REQUIRE_GRADGRADCHECK([g](const Inputs& in) { return conv_with(in, g); }, {x, w, b});
  // Through a nonlinearity, so the second derivative is not only the bilinear term.
  REQUIRE_GRADGRADCHECK(
      [](const Inputs& in) { return tanh(conv2d(in[0], in[1], Tensor(), 1, 1)); },
      {random_input({1, 1, 4, 4}, 10), random_input({2, 1, 3, 3}, 11)});
}

TEST_CASE("conv2d rejects bad shapes and arguments with the op's name", "[conv]") {
  Tensor x = zeros({1, 4, 5, 5}), w = zeros({2, 4, 3, 3});
  require_error([&] { conv2d(zeros({4, 5, 5}), w); }, {"conv2d", "NCHW"});
  require_error([&] { conv2d(x, zeros({2, 3, 3, 3})); }, {"conv2d", "input channels"});
  require_error([&] { conv2d(x, w, zeros({3})); }, {"conv2d", "bias"});
  require_error([&] { conv2d(x, zeros({3, 2, 3, 3}), Tensor(), 1, 0, 1, 2); },
                {"conv2d", "divisible by groups"});
  require_error([&] { conv2d(x, w, Tensor(), 0); }, {"conv2d", "stride"});
  require_error([&] { conv2d(x, zeros({2, 4, 7, 7})); }, {"conv2d", "smaller than the window"});
  require_error([&] { conv2d(x, zeros({2, 4, 3, 3}, DType::f64)); }, {"conv2d"});
}

// ---------------------------------------------------------------- pools

TEST_CASE("max_pool2d and avg_pool2d equal direct loops", "[conv]") {
  struct Case {
    Shape x;
    int64_t kh, kw, sh, sw, ph, pw;
  };
  const Case cases[] = {{{2, 3, 8, 8}, 2, 2, 2, 2, 0, 0},
                        {{1, 2, 7, 9}, 3, 3, 2, 2, 1, 1},
                        {{2, 1, 6, 5}, 3, 2, 1, 2, 1, 1},
                        {{1, 1, 5, 5}, 2, 2, 1, 1, 0, 0}};
  unsigned seed = 200;
  for (const Case& k : cases) {
    Tensor x = random_input(k.x, ++seed);
    INFO("x " << k.x << " kernel " << k.kh << "x" << k.kw);
    require_values(max_pool2d(x, {k.kh, k.kw}, {k.sh, k.sw}, {k.ph, k.pw}),
                   direct_pool(x, k.kh, k.kw, k.sh, k.sw, k.ph, k.pw, true), 1e-12);
    require_values(avg_pool2d(x, {k.kh, k.kw}, {k.sh, k.sw}, {k.ph, k.pw}),
                   direct_pool(x, k.kh, k.kw, k.sh, k.sw, k.ph, k.pw, false), 1e-12);
  }
  // stride defaults to the kernel size
  Tensor x = random_input({1, 1, 4, 6}, 1);
  REQUIRE(max_pool2d(x, 2).shape() == Shape{1, 1, 2, 3});
  REQUIRE(avg_pool2d(x, {2, 3}).shape() == Shape{1, 1, 2, 2});
}

TEST_CASE("max_pool2d with dilation, and its gradient goes to the first largest pixel",
          "[conv]") {
  // dilation 2: window (0,0),(0,2),(2,0),(2,2) of a 3x3 image
  Tensor x = tensor({1, 9, 3, 4, 5, 6, 7, 8, 2}, {1, 1, 3, 3}).set_requires_grad();
  Tensor y = max_pool2d(x, 2, 1, 0, 2);
  require_values(y, {7});
  // ties: all equal → PyTorch sends the whole gradient to the first of the window
  Tensor t = ones({1, 1, 2, 2}).set_requires_grad();
  backward(sum(max_pool2d(t, 2)));
  require_values(t.grad(), {1, 0, 0, 0});
  // NaN propagates, as in PyTorch
  Tensor nan = tensor({1, std::nan(""), 3, 4}, {1, 1, 2, 2});
  REQUIRE(std::isnan(max_pool2d(nan, 2).item()));
}

TEST_CASE("pool gradients pass gradcheck and gradgradcheck", "[conv]") {
  // distinct values so that no max is tied (a tie has no derivative)
  std::vector<double> values(2 * 2 * 7 * 6);
  for (size_t i = 0; i < values.size(); ++i) values[i] = std::sin(1.7 * double(i)) + 0.001 * double(i);
  Tensor x = tensor(values, {2, 2, 7, 6}, DType::f64).set_requires_grad();
  REQUIRE_GRADCHECK([](const Inputs& in) { return max_pool2d(in[0], 3, 2, 1); }, {x});
  REQUIRE_GRADCHECK([](const Inputs& in) { return max_pool2d(in[0], {2, 3}, 1, 0, {2, 1}); }, {x});
  REQUIRE_GRADCHECK([](const Inputs& in) { return avg_pool2d(in[0], 3, 2, 1); }, {x});
  REQUIRE_GRADCHECK([](const Inputs& in) { return avg_pool2d(in[0], {2, 3}, {1, 2}); }, {x});
  REQUIRE_GRADGRADCHECK([](const Inputs& in) { return square(max_pool2d(in[0], 2)); }, {x});
  REQUIRE_GRADGRADCHECK([](const Inputs& in) { return square(avg_pool2d(in[0], 3, 2, 1)); }, {x});
}

TEST_CASE("pools reject bad arguments with the op's name", "[conv]") {
  Tensor x = zeros({1, 1, 4, 4});
  require_error([&] { max_pool2d(x, 2, 2, 2); }, {"max_pool2d", "half the kernel"});
  require_error([&] { avg_pool2d(x, 5); }, {"avg_pool2d", "smaller than the window"});
  require_error([&] { max_pool2d(zeros({4, 4}), 2); }, {"max_pool2d", "NCHW"});
  require_error([&] { avg_pool2d(x, 0); }, {"avg_pool2d", "kernel"});
}

// ---------------------------------------------------------------- threads

namespace {

// The geometry of a kh x kw window over x [n, c, h, w] (backend.h's Window2d).
Window2d window_over(const Shape& x, int64_t kh, int64_t kw, int64_t stride, int64_t pad,
                     int64_t dilation) {
  Window2d w;
  w.batch = x[0];
  w.channels = x[1];
  w.height = x[2];
  w.width = x[3];
  w.kernel_h = kh;
  w.kernel_w = kw;
  w.stride_h = w.stride_w = stride;
  w.pad_h = w.pad_w = pad;
  w.dilation_h = w.dilation_w = dilation;
  w.out_h = out_size(w.height, kh, stride, pad, dilation);
  w.out_w = out_size(w.width, kw, stride, pad, dilation);
  return w;
}

// The bytes of a tensor, to compare results bit for bit.
std::vector<unsigned char> bytes_of(const Tensor& t) {
  const auto* p = static_cast<const unsigned char*>(t.raw_data());
  return std::vector<unsigned char>(p, p + t.numel() * dtype_size(t.dtype()));
}

}  // namespace

TEST_CASE("im2col, col2im and max_pool2d_index give the same bits on 1, 2, 3 and 8 threads",
          "[conv]") {
  struct ThreadsGuard {  // restores the thread count, also when an assertion fails
    int threads = num_threads();
    ~ThreadsGuard() { set_num_threads(threads); }
  } guard;
  Backend& cpu = backend_for(Device::cpu_device());
  struct Case {
    Shape x;
    int64_t kh, kw, stride, pad, dilation;
  };
  // Each kernel big enough to be split into many tasks: the CNN example's 3x3 convolution and
  // 2x2 pool, and strided, padded, dilated and overlapping windows.
  const Case cases[] = {{{16, 8, 28, 28}, 3, 3, 1, 1, 1},
                        {{16, 8, 28, 28}, 2, 2, 2, 0, 1},
                        {{8, 6, 21, 19}, 3, 3, 2, 1, 1},
                        {{8, 6, 21, 19}, 3, 2, 1, 1, 2},
                        {{4, 5, 30, 30}, 5, 5, 3, 2, 1}};
  Generator generator(11);
  for (const Case& k : cases)
    for (DType dtype : {DType::f32, DType::f64}) {
      const Window2d w = window_over(k.x, k.kh, k.kw, k.stride, k.pad, k.dilation);
      INFO("x " << k.x << " kernel " << k.kh << "x" << k.kw << " stride " << k.stride << " pad "
                << k.pad << " dilation " << k.dilation << " " << dtype_name(dtype));
      // After a ReLU (many ties at 0, as in the CNN), with a NaN in one plane.
      std::vector<double> values = relu(normal(k.x, 0, 1, generator)).to_vector();
      values[values.size() / 3] = std::nan("");
      Tensor x = tensor(values, k.x, dtype);
      Tensor columns_in =
          normal({w.channels * w.kernel_h * w.kernel_w, w.batch * w.out_h * w.out_w}, 0, 1,
                 generator)
              .to(dtype);
      auto run = [&] {
        Tensor columns = empty(columns_in.shape(), dtype);
        Tensor image = empty(k.x, dtype);
        Tensor index = empty({w.batch * w.channels, w.out_h * w.out_w}, DType::i64);
        cpu.im2col(dtype, x.raw_data(), columns.raw_data(), w);
        cpu.col2im(dtype, columns_in.raw_data(), image.raw_data(), w);
        if (k.pad <= k.kh / 2 && k.pad <= k.kw / 2)  // max pooling's rule
          cpu.max_pool2d_index(dtype, x.raw_data(), static_cast<int64_t*>(index.raw_data()), w);
        else
          index = zeros(index.shape(), DType::i64);
        return std::vector<std::vector<unsigned char>>{bytes_of(columns), bytes_of(image),
                                                       bytes_of(index)};
      };
      set_num_threads(1);
      const auto one = run();
      for (int threads : {2, 3, 8}) {
        set_num_threads(threads);
        const auto many = run();
        for (size_t r = 0; r < one.size(); ++r) {
          INFO((r == 0 ? "im2col" : r == 1 ? "col2im" : "max_pool2d_index") << " on " << threads
                                                                             << " threads");
          REQUIRE(many[r] == one[r]);
        }
      }
    }
}

// ---------------------------------------------------------------- modules

TEST_CASE("Conv2d has PyTorch's shapes, initial bounds and names", "[conv]") {
  Generator g(3);
  nn::Conv2d conv(4, 6, 3, g, 1, 1, 1, 2);
  REQUIRE(conv.weight.shape() == Shape{6, 2, 3, 3});
  REQUIRE(conv.bias.shape() == Shape{6});
  const double bound = 1 / std::sqrt(2.0 * 9.0);  // fan_in = in/groups · kh · kw
  for (const Tensor& p : {conv.weight, conv.bias})
    for (double v : p.to_vector()) REQUIRE(std::abs(v) <= bound);
  auto names = conv.named_parameters();
  REQUIRE(names.size() == 2);
  REQUIRE(names[0].first == "weight");
  Tensor y = conv(zeros({2, 4, 5, 5}));
  REQUIRE(y.shape() == Shape{2, 6, 5, 5});
  nn::Sequential net({std::make_shared<nn::Conv2d>(1, 2, 3, g), std::make_shared<nn::MaxPool2d>(2),
                      std::make_shared<nn::AvgPool2d>(2, 1), std::make_shared<nn::Flatten>()});
  REQUIRE(net(zeros({3, 1, 10, 10})).shape() == Shape{3, 2 * 3 * 3});
  REQUIRE(net.to_string().find("MaxPool2d(2)") != std::string::npos);
}

TEST_CASE("kaiming_normal_ and xavier_normal_ draw with PyTorch's standard deviations",
          "[conv]") {
  Generator g(11);
  Tensor w = empty({256, 64, 3, 3});
  nn::init::kaiming_normal_(w, g);  // std = √(2 / fan_in), fan_in = 64·9
  std::vector<double> v = w.to_vector();
  auto stddev = [](const std::vector<double>& values) {
    double s = 0, s2 = 0;
    for (double x : values) s += x, s2 += x * x;
    double m = s / double(values.size());
    return std::sqrt(s2 / double(values.size()) - m * m);
  };
  REQUIRE(stddev(v) == Approx(std::sqrt(2.0 / (64 * 9))).epsilon(0.01));
  nn::init::kaiming_normal_(w, g, 0.0, true);  // fan_out = 256·9
  REQUIRE(stddev(w.to_vector()) == Approx(std::sqrt(2.0 / (256 * 9))).epsilon(0.01));
  nn::init::xavier_normal_(w, g, 2.0);
  REQUIRE(stddev(w.to_vector()) == Approx(2.0 * std::sqrt(2.0 / ((64 + 256) * 9))).epsilon(0.01));
}
