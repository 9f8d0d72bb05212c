// tapegrad/checkpoint.h — saving and restoring training runs.
//
//   tg::TrainingState state{&model, &adam, {{"data", &shuffle}, {"noise", &noise}}};
//   state.step = step; state.epoch = epoch;
//   tg::save_checkpoint("out/vae/checkpoint.tgc", state);
//   ...
//   tg::load_checkpoint("out/vae/checkpoint.tgc", state);   // model, optimizer, generators,
//   step = state.step;                                       // step and epoch as they were
//
// A checkpoint is a StateDict written in one file (format below). Saving writes a temporary file
// beside the target, fsyncs it and renames it over the target, so a crash or a full disk mid-save
// leaves the previous checkpoint intact, and a concurrent reader sees the old file or the new one,
// whole. The temporary is this writer's alone (threads and processes saving one path each commit
// whole), and what killed writers leave behind is removed by the next save; every file tapegrad
// writes goes this way (docs/architecture.md, "Files"). Loading reads and checks the whole file
// (length, checksum, structure) and then that every entry fits the model and optimizer, before
// changing anything: a corrupt, truncated or mismatched file, a directory or an unreadable path is
// a tg::Error naming the file and the reason, and leaves everything as it was.
//
// File format, version 1 (all integers little-endian):
//   magic      8 bytes   89 'T' 'G' 'C' 'K' 'P' 'T' 0A
//   version    u32       1
//   file size  u64       total bytes, checksum included
//   entries    u32       count, then for each entry:
//     name       u16 length + UTF-8 bytes ("model.fc1.weight")
//     dtype      u8        0 f32, 1 f64, 2 i64
//     rank       u8        0..8, then rank × i64 dimensions
//     data       numel × element size bytes, row-major
//   checksum   u32       CRC-32 (zlib's) of every byte before it
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "tapegrad/nn.h"
#include "tapegrad/optim.h"
#include "tapegrad/random.h"
#include "tapegrad/state_dict.h"

namespace tg {

// ---------------------------------------------------------------- state dict files

// Writes `state` (tensors on any device) to `path`, atomically as described above.
// `before_rename` (for tests of crash safety) runs after the temporary file is complete, flushed
// and fsync'd, just before the rename; whatever it does — throw, or end the process — the target
// keeps its previous contents.
void write_state_dict(const std::string& path, const StateDict& state,
                      const std::function<void(const std::string& temporary_path)>& before_rename =
                          nullptr);
// Reads a file written by write_state_dict; tensors come back on the CPU. Throws a tg::Error naming
// the file and what is wrong (not a checkpoint, unsupported version, truncated, checksum mismatch,
// malformed entry).
StateDict read_state_dict(const std::string& path);

// ---------------------------------------------------------------- generators

// A generator's (seed, stream, offset) as an i64 [3] tensor (the bits of each u64).
Tensor generator_state(const Generator& generator);
// Throws unless `state` came from generator_state.
Generator::State generator_state_from(const Tensor& state, const std::string& name);

// ---------------------------------------------------------------- training runs

// What a training run needs to continue exactly where it stopped. The model is required; the
// optimizer, scheduler and generators are optional. Entries: "model.*", "optimizer.*",
// "scheduler.*", "rng.<name>", "step", "epoch".
struct TrainingState {
  nn::Module* model = nullptr;
  optim::Optimizer* optimizer = nullptr;
  std::vector<std::pair<std::string, Generator*>> generators;
  int64_t step = 0;
  int64_t epoch = 0;
  // Optional: a learning-rate scheduler (StepLR, WarmupCosineLR, ReduceLROnPlateau), "scheduler.*".
  optim::Scheduler* scheduler = nullptr;

  StateDict state_dict() const;
  // Checks that `state` fits the model, optimizer and generators exactly; throws naming the
  // first mismatch.
  void check_state_dict(const StateDict& state) const;
  // check_state_dict, then restores everything (including step and epoch).
  void load_state_dict(const StateDict& state);
};

void save_checkpoint(const std::string& path, const TrainingState& state);
// Reads, checks everything, then restores; on any error nothing has changed.
void load_checkpoint(const std::string& path, TrainingState& state);

}  // namespace tg
