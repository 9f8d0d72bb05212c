// src/tensor/backend_registry.cpp — which Backend serves which device: the CPU backend always,
// a GPU's backend from its first use (when tapegrad is built with CUDA), and stand-ins that tests
// register.
#include <atomic>
#include <mutex>

#include "tapegrad/backend.h"
#include "tapegrad/error.h"

#if defined(TG_HAVE_CUDA)
#include "../cuda/cuda_devices.h"
#endif

namespace tg {

Backend& cpu_backend();  // src/cpu/cpu_backend.cpp

namespace {

constexpr int kMaxCudaDevices = 64;

// Lookups are lock-free (a tensor's destructor asks for its backend); starting a GPU's backend
// takes the lock, so two threads cannot start one twice.
struct Registry {
  std::atomic<Backend*> cpu{&cpu_backend()};
  std::atomic<Backend*> cuda[kMaxCudaDevices] = {};
  std::mutex starting;
};

Registry& registry() {
  static Registry r;
  return r;
}

std::atomic<Backend*>* slot(Device device) {
  if (device.kind == Device::cpu) return device.index == 0 ? &registry().cpu : nullptr;
  if (device.index < 0 || device.index >= kMaxCudaDevices) return nullptr;
  return &registry().cuda[device.index];
}

}  // namespace

Backend* register_backend(Device device, Backend* backend) {
  std::atomic<Backend*>* s = slot(device);
  check(s != nullptr, "register_backend", "no device ", device, " can be registered");
  return s->exchange(backend);
}

Backend* find_backend(Device device) noexcept {
  std::atomic<Backend*>* s = slot(device);
  return s ? s->load() : nullptr;
}

int cuda_device_count() {
#if defined(TG_HAVE_CUDA)
  return cuda::device_count();
#else
  return 0;
#endif
}

std::string cuda_unavailable_reason() {
#if defined(TG_HAVE_CUDA)
  return cuda::unavailable_reason();
#else
  return "tapegrad was built without CUDA (meson setup -Dcuda=enabled needs nvcc and cuBLAS)";
#endif
}

Backend& backend_for(Device device) {
  if (Backend* backend = find_backend(device)) return *backend;
  check(device.kind == Device::cuda && device.index >= 0, "device", "no backend for ", device);
#if defined(TG_HAVE_CUDA)
  const int count = cuda::device_count();
  check(count > 0, "device", "no backend for ", device, ": ", cuda::unavailable_reason());
  check(device.index < count && device.index < kMaxCudaDevices, "device", "no backend for ", device, ": this machine has ", count,
        " CUDA GPU", count == 1 ? "" : "s", " (cuda:0", count > 1 ? " to cuda:" : "",
        count > 1 ? std::to_string(count - 1) : std::string(), ")");
  std::lock_guard<std::mutex> lock(registry().starting);
  std::atomic<Backend*>& s = registry().cuda[device.index];
  if (!s.load()) s.store(cuda::create_backend(device.index));  // throws a tg::Error on failure
  return *s.load();
#else
  fail("device", "no backend for ", device, " in this build: ", cuda_unavailable_reason());
#endif
}

void synchronize(Device device) { backend_for(device).synchronize(); }

}  // namespace tg
