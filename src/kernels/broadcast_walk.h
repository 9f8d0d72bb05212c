// src/kernels/broadcast_walk.h — how an elementwise kernel walks a broadcast (or any strided
// view): the layout with size-1 dimensions dropped and neighbouring dimensions merged wherever
// every input walks them as one (stride[d] == stride[d+1] * size[d+1]). Most broadcasts collapse
// to one or two dimensions, e.g. [N, C] + [C] -> sizes {N, C}, strides a {C, 1}, b {0, 1}.
//
// The CPU walks the result row by row with an odometer; a CUDA thread finds its element's offsets
// from its flat index (walk_offset). Both start from the same collapsed walk.
#pragma once

#include <cstdint>

#include "elementwise_math.h"  // TG_HOST_DEVICE
#include "tapegrad/backend.h"   // BroadcastLayout

namespace tg::kernels {

struct BroadcastWalk {
  int rank = 0;
  int64_t size[kMaxRank] = {};
  int64_t stride[BroadcastLayout::kMaxInputs][kMaxRank] = {};
};

// `shape` walked by `inputs` stride sets, collapsed. A walk always has rank >= 1 (a single
// element is one dimension of size 1 with stride 0).
inline BroadcastWalk collapse_walk(const Shape& shape, const int64_t (*strides)[kMaxRank],
                                   int inputs) {
  BroadcastWalk w;
  for (int d = 0; d < shape.rank(); ++d) {
    if (shape[d] == 1) continue;
    bool merge = w.rank > 0;
    for (int i = 0; i < inputs && merge; ++i)
      merge = w.stride[i][w.rank - 1] == strides[i][d] * shape[d];
    if (merge) {
      w.size[w.rank - 1] *= shape[d];
      for (int i = 0; i < inputs; ++i) w.stride[i][w.rank - 1] = strides[i][d];
    } else {
      w.size[w.rank] = shape[d];
      for (int i = 0; i < inputs; ++i) w.stride[i][w.rank] = strides[i][d];
      ++w.rank;
    }
  }
  if (w.rank == 0) {  // a single element
    w.rank = 1;
    w.size[0] = 1;
    for (int i = 0; i < inputs; ++i) w.stride[i][0] = 0;
  }
  return w;
}

inline BroadcastWalk collapse_walk(const BroadcastLayout& layout) {
  return collapse_walk(layout.shape, layout.strides, layout.inputs);
}

// The offsets in the first `Inputs` stride sets of the element with row-major index `flat` in
// the walked shape.
template <int Inputs>
TG_HOST_DEVICE inline void walk_offsets(const BroadcastWalk& w, int64_t flat, int64_t* offsets) {
  if (w.rank == 1) {  // the common case needs no division
    for (int i = 0; i < Inputs; ++i) offsets[i] = flat * w.stride[i][0];
    return;
  }
  for (int i = 0; i < Inputs; ++i) offsets[i] = 0;
  for (int d = w.rank - 1; d >= 0; --d) {
    const int64_t size = w.size[d], index = flat % size;
    flat /= size;
    for (int i = 0; i < Inputs; ++i) offsets[i] += index * w.stride[i][d];
  }
}

}  // namespace tg::kernels
