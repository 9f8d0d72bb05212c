// examples/common/blas_kernels.cpp — see blas_kernels.h.
#include "blas_kernels.h"

#include <cblas.h>

#include <cstdlib>

namespace examples {

std::string blas_kernels() {
  std::string text = std::string("OpenBLAS ") + openblas_get_corename() + " kernels";
  if (const char* chosen = std::getenv("OPENBLAS_CORETYPE"))
    text += std::string(" (OPENBLAS_CORETYPE=") + chosen + ")";
  return text;
}

}  // namespace examples
