// tests/test_devices.cpp — device handling, checked with a stand-in second device
// (stand_in_backend.h: host memory, CPU kernels, registered as cuda:0). It lets the CPU-only
// test suite exercise moves between devices and the errors for mixing them.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "helpers.h"
#include "stand_in_backend.h"

using namespace tg;
using tgtest::require_error;
using tgtest::require_values;
using tgtest::StandInDevice;

TEST_CASE("tensors move between devices and keep their values", "[devices]") {
  StandInDevice device;
  Device other = Device::cuda_device();
  Tensor x = tensor({1, 2, 3}, DType::f64);
  Tensor moved = x.to(other);
  REQUIRE(moved.device() == other);
  REQUIRE(device.backend.host_copies == 1);
  require_values(moved, {1, 2, 3});  // reading copies back to the host
  REQUIRE(moved.to(Device::cpu_device()).device().is_cpu());
  require_error([&] { moved.data<double>(); }, {"data", "cuda:0", "to(Device::cpu_device())"});
  REQUIRE(moved.to_string().find("cuda:0") != std::string::npos);
}

TEST_CASE("ops and gradients work on the other device", "[devices]") {
  StandInDevice device;
  Tensor w = tensor({0.5, -1.0}, DType::f64).to(Device::cuda_device()).set_requires_grad();
  Tensor y = sum(tanh(w) * w);
  REQUIRE(y.device() == Device::cuda_device());
  backward(y);
  REQUIRE(w.grad().device() == Device::cuda_device());
  double t0 = std::tanh(0.5), t1 = std::tanh(-1.0);
  require_values(w.grad(), {t0 + 0.5 * (1 - t0 * t0), t1 - (1 - t1 * t1)}, 1e-12);
}

TEST_CASE("mixing devices is an error naming both", "[devices]") {
  StandInDevice device;
  Tensor a = ones({2}), b = ones({2}).to(Device::cuda_device());
  require_error([&] { add(a, b); }, {"add", "different devices", "cpu", "cuda:0"});
  require_error([&] { matmul(ones({2, 2}), ones({2, 2}).to(Device::cuda_device())); },
                {"matmul", "cpu", "cuda:0"});
}

TEST_CASE("a gradient must be on its tensor's device (backward's seed, set_grad)", "[devices]") {
  StandInDevice device;
  Tensor x = tensor({1, 2}, DType::f64).to(Device::cuda_device()).set_requires_grad();
  Tensor y = softmax(x);
  require_error([&] { backward(y, ones({2}, DType::f64)); },
                {"backward", "gradient is on cpu", "output on cuda:0"});
  require_error([&] { backward(x, ones({2}, DType::f64)); }, {"backward", "cpu", "cuda:0"});
  require_error([&] { x.set_grad(ones({2}, DType::f64)); }, {"set_grad", "on cpu", "on cuda:0"});
  REQUIRE_FALSE(x.grad().defined());
}

TEST_CASE("fused primitives and their gradients work on the other device", "[devices]") {
  StandInDevice device;
  Device other = Device::cuda_device();
  Tensor x = tensor({1, 2, 0.5, -1, 0, 3}, {2, 3}, DType::f64).to(other).set_requires_grad();
  Tensor t = tensor({0.2, 0.3, 1.5}, {3, 1}, DType::f64);
  Tensor labels = index_tensor({2, 0}).to(other);
  Tensor loss = add(cross_entropy(x, labels, 0.1),
                    kl_div(log_softmax(x, -1, 2.0), softmax(ones({2, 3}, DType::f64).to(other), -1),
                           Reduction::batchmean));
  loss = add(loss, bce_with_logits(x, full({2, 3}, 0.5, DType::f64).to(other)));
  REQUIRE(loss.device() == other);
  backward(loss);
  REQUIRE(x.grad().device() == other);
  Tensor x_cpu = x.detach().to(Device::cpu_device()).set_requires_grad();
  backward(add(add(cross_entropy(x_cpu, index_tensor({2, 0}), 0.1),
                   kl_div(log_softmax(x_cpu, -1, 2.0), softmax(ones({2, 3}, DType::f64), -1),
                          Reduction::batchmean)),
               bce_with_logits(x_cpu, full({2, 3}, 0.5, DType::f64))));
  require_values(x.grad(), x_cpu.grad().to_vector(), 1e-14);
  require_error([&] { kl_divergence_logits(x, ones({2, 3}, DType::f64)); },
                {"kl_divergence_logits", "different devices", "cuda:0", "cpu"});
  require_error(
      [&] {
        cross_entropy(x, index_tensor({2, 0}));
      },
      {"cross_entropy", "labels are on cpu"});
  require_error([&] { softmax(x, -1, t.to(other)); }, {"softmax", "[3, 1]", "[2, 1]"});
}

TEST_CASE("modules, optimizers, loaders and checkpoints keep to the other device", "[devices]") {
  StandInDevice device;
  Device other = Device::cuda_device();
  // The same small regression trained on the CPU and on the other device gives the same numbers.
  auto train = [](Device where) {
    Generator init(1), shuffle(2);
    nn::MLP model({3, 4, 1}, init, nn::Activation::tanh, false, DType::f32, where);
    optim::Adam adam(model.parameters());
    Tensor inputs = reshape(arange(24), {8, 3}).to(where);
    Tensor targets = reshape(arange(8), {8, 1}).to(where);
    data::DataLoader loader(inputs, targets, 4, &shuffle);
    for (int epoch = 0; epoch < 3; ++epoch) {
      loader.start_epoch();
      for (int64_t b = 0; b < loader.batch_count(); ++b) {
        data::Batch batch = loader.batch(b);
        REQUIRE(batch.inputs.device() == where);
        adam.zero_grad();
        backward(sum(square(sub(model(div(batch.inputs, 24.0)), div(batch.targets, 8.0)))));
        adam.step();
      }
    }
    for (const Tensor& p : model.parameters()) {
      REQUIRE(p.device() == where);
      REQUIRE(p.grad().device() == where);
    }
    StateDict state = model.state_dict();
    state.add_all("adam.", adam.state_dict());
    return state;
  };
  StateDict on_cpu = train(Device::cpu_device()), on_other = train(other);
  REQUIRE(on_cpu.size() == on_other.size());
  for (size_t i = 0; i < on_cpu.size(); ++i) {
    INFO(on_cpu.entries()[i].first);
    REQUIRE(on_cpu.entries()[i].second.to_vector() == on_other.entries()[i].second.to_vector());
  }

  // A checkpoint written from the other device loads into a CPU model, and back.
  Generator g1(3), g2(4);
  nn::Linear remote(2, 2, g1, true, DType::f32, other), local(2, 2, g2);
  std::string path = std::string(std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp") +
                     "/tapegrad-devices-" + std::to_string(getpid()) + ".tgc";
  write_state_dict(path, remote.state_dict());
  local.load_state_dict(read_state_dict(path));
  REQUIRE(local.weight.to_vector() == remote.weight.to_vector());
  remote.load_state_dict(local.state_dict());
  REQUIRE(remote.weight.device() == other);
  std::remove(path.c_str());
}

TEST_CASE("the registry keys backends by device index; synchronize reaches the device's backend",
          "[devices]") {
  StandInDevice device;
  REQUIRE(find_backend(Device::cuda_device(0)) == &device.backend);
  REQUIRE(find_backend(Device::cuda_device(1)) != &device.backend);
  REQUIRE(find_backend(Device::cuda_device(-1)) == nullptr);
  if (cuda_device_count() < 2)
    require_error([] { zeros({2}, DType::f32, Device::cuda_device(1)); }, {"no backend for cuda:1"});
  synchronize(Device::cuda_device(0));
  REQUIRE(device.backend.synchronizations == 1);
  synchronize(Device::cpu_device());  // nothing to wait for
  // Index checks go to the device's backend (the stand-in runs the CPU's, which throw at once).
  Tensor x = ones({3}).to(Device::cuda_device(0));
  require_error([&] { gather(x, 0, index_tensor({0, 3}).to(Device::cuda_device(0))); },
                {"gather", "index 3 at position 1", "[0, 3)"});
  require_error([&] { softmax(x, 0, full({1}, -1.0).to(Device::cuda_device(0))); },
                {"softmax", "finite number > 0", "-1"});
}

TEST_CASE("Module::to moves parameters, gradients and buffers in place; optimizer state follows",
          "[devices]") {
  StandInDevice device;
  Device other = Device::cuda_device(0);
  auto steps = [](nn::Module& model, optim::Optimizer& opt, Device where, int count) {
    for (int s = 0; s < count; ++s) {
      Tensor x = reshape(arange(6), {2, 3}).to(where);
      opt.zero_grad();
      backward(sum(square(model(div(x, 6.0)))));
      opt.step();
    }
  };
  Generator g1(5), g2(5);
  nn::MLP moved({3, 4, 2}, g1), stayed({3, 4, 2}, g2);
  optim::Adam adam_moved(moved.parameters()), adam_stayed(stayed.parameters());
  optim::SGD sgd_moved(moved.parameters(), {0.1, 0.9}), sgd_stayed(stayed.parameters(), {0.1, 0.9});
  steps(moved, adam_moved, Device::cpu_device(), 2);
  steps(moved, sgd_moved, Device::cpu_device(), 1);
  Tensor weight = moved.parameters()[0];   // a handle taken before the move sees it
  moved.to(other);
  REQUIRE(weight.device() == other);
  REQUIRE(weight.grad().device() == other);
  steps(moved, adam_moved, other, 2);      // Adam's moments move at their next step
  steps(moved, sgd_moved, other, 1);
  StateDict adam_state = adam_moved.state_dict();
  for (const auto& entry : adam_state.entries())
    if (entry.second.numel() > 1) REQUIRE(entry.second.device() == other);
  steps(stayed, adam_stayed, Device::cpu_device(), 2);
  steps(stayed, sgd_stayed, Device::cpu_device(), 1);
  steps(stayed, adam_stayed, Device::cpu_device(), 2);
  steps(stayed, sgd_stayed, Device::cpu_device(), 1);
  for (size_t i = 0; i < moved.parameters().size(); ++i)
    REQUIRE(moved.parameters()[i].to_vector() == stayed.parameters()[i].to_vector());
  moved.to(Device::cpu_device());
  REQUIRE(weight.device().is_cpu());
  require_error([&] { moved.to(Device::cuda_device(63)); }, {"no backend for cuda:63"});
}
