// src/cpu/vector_math.h — lets GCC vectorise loops that call exp, log, tanh, ...
//
// glibc ships SIMD versions of these functions (libmvec: _ZGVdN8v_expf for AVX2, ...), but only
// declares them under -ffast-math, which we do not want (it breaks NaN and infinity handling that
// softmax and friends rely on). Declaring the SIMD variants here, with -fopenmp-simd and
// -fno-math-errno, makes `#pragma omp simd` loops call them: 8 or 16 lanes per call, within
// 4 ulp of the scalar functions. On other platforms this header declares nothing and the loops
// stay scalar.
#pragma once

#include <cmath>

#if defined(__x86_64__) && defined(__GLIBC__) && defined(TG_USE_LIBMVEC)
extern "C" {
#pragma omp declare simd notinbranch
float expf(float);
#pragma omp declare simd notinbranch
double exp(double);
#pragma omp declare simd notinbranch
float logf(float);
#pragma omp declare simd notinbranch
double log(double);
#pragma omp declare simd notinbranch
float log1pf(float);
#pragma omp declare simd notinbranch
double log1p(double);
#pragma omp declare simd notinbranch
float expm1f(float);
#pragma omp declare simd notinbranch
double expm1(double);
#pragma omp declare simd notinbranch
float tanhf(float);
#pragma omp declare simd notinbranch
double tanh(double);
#pragma omp declare simd notinbranch
float powf(float, float);
#pragma omp declare simd notinbranch
double pow(double, double);
}
#endif
