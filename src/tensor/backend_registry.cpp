// src/tensor/backend_registry.cpp — which Backend serves which device kind.
#include "tapegrad/backend.h"
#include "tapegrad/error.h"

namespace tg {

Backend& cpu_backend();  // src/cpu/cpu_backend.cpp

namespace {
Backend** registry() {
  static Backend* backends[2] = {&cpu_backend(), nullptr};
  return backends;
}
}  // namespace

void register_backend(Device::Kind kind, Backend* backend) { registry()[kind] = backend; }

Backend* find_backend(Device device) noexcept { return registry()[device.kind]; }

Backend& backend_for(Device device) {
  Backend* backend = registry()[device.kind];
  if (!backend)
    fail("device", "no backend for ", device,
         " in this build (tapegrad was built without CUDA, or no GPU is present)");
  return *backend;
}

}  // namespace tg
