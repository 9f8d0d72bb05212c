// src/io/deflate_limit.h — how much data a compressed file can hold, for bounding what a header
// may claim before anything is allocated for it (read_idx on .gz files, read_png).
#pragma once

#include <cstdint>

namespace tg {

// Deflate cannot expand data by more than about 1032:1.
constexpr uint64_t kMaxDeflateRatio = 1032;

}  // namespace tg
