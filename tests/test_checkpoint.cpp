// tests/test_checkpoint.cpp — the checkpoint file: exact round trips, every truncation and every
// single-bit flip rejected, mismatched checkpoints rejected without changes, and a crash between
// writing the temporary file and renaming it leaving the previous checkpoint intact.
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <cstring>
#include <filesystem>

#include "../src/io/files.h"
#include "file_helpers.h"
#include "helpers.h"

using namespace tg;
using tgtest::require_error;
using tgtest::TempDir;

namespace {

struct Net : nn::Module {
  std::shared_ptr<nn::Linear> fc1, fc2;
  Net(Generator& g, int64_t hidden = 5)
      : fc1(register_module("fc1", std::make_shared<nn::Linear>(3, hidden, g))),
        fc2(register_module("fc2", std::make_shared<nn::Linear>(hidden, 2, g))) {}
  Tensor forward(const Tensor& x) override { return (*fc2)(relu((*fc1)(x))); }
};

// One training step on noise drawn from `noise`: the optimizer state and the generator move.
void train_step(Net& net, optim::Optimizer& opt, Generator& noise) {
  Tensor x = randn({4, 3}, noise);
  opt.zero_grad();
  backward(sum(square(net(x))));
  opt.step();
}

std::vector<std::vector<double>> values_of(const StateDict& state) {
  std::vector<std::vector<double>> out;
  for (const auto& e : state) out.push_back(e.second.to_vector());
  return out;
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() &&
         std::memcmp(a.raw_data(), b.raw_data(), a.numel() * dtype_size(a.dtype())) == 0;
}

StateDict sample_state() {
  StateDict state;
  state.add("weights", tensor({1.5, -2.25, 3e-20, -0.0}, {2, 2}));
  state.add("f64", tensor({3.141592653589793}, DType::f64));
  state.add_integer("big", (int64_t(1) << 62) + 1);  // not representable as a double
  state.add("empty", zeros({0, 3}));
  state.add_real("scalar", 0.1);
  return state;
}

}  // namespace

TEST_CASE("a state dict file round-trips names, dtypes, shapes and bits", "[checkpoint]") {
  TempDir dir;
  StateDict state = sample_state();
  write_state_dict(dir.file("a.tgc"), state);
  StateDict back = read_state_dict(dir.file("a.tgc"));
  REQUIRE(back.size() == state.size());
  for (size_t i = 0; i < state.size(); ++i) {
    INFO(state.entries()[i].first);
    REQUIRE(back.entries()[i].first == state.entries()[i].first);
    REQUIRE(same_bits(back.entries()[i].second, state.entries()[i].second));
  }
  REQUIRE(*back.find("big")->data<int64_t>() == (int64_t(1) << 62) + 1);
  REQUIRE(std::signbit(back.find("weights")->data<float>()[3]));  // -0.0 stays -0.0
}

TEST_CASE("every truncation of a checkpoint is rejected with a clear error", "[checkpoint]") {
  TempDir dir;
  write_state_dict(dir.file("a.tgc"), sample_state());
  std::vector<uint8_t> bytes = tgtest::read_bytes(dir.file("a.tgc"));
  for (size_t length = 0; length < bytes.size(); ++length) {
    tgtest::write_bytes(dir.file("cut.tgc"), {bytes.begin(), bytes.begin() + length});
    INFO("length " << length);
    require_error([&] { read_state_dict(dir.file("cut.tgc")); },
                  {"load_checkpoint", dir.file("cut.tgc")});
    if (length >= 24) require_error([&] { read_state_dict(dir.file("cut.tgc")); }, {"truncated"});
  }
  bytes.push_back(0);
  tgtest::write_bytes(dir.file("long.tgc"), bytes);
  require_error([&] { read_state_dict(dir.file("long.tgc")); }, {"1 unexpected bytes after"});
}

TEST_CASE("every single-bit flip in a checkpoint is detected", "[checkpoint]") {
  TempDir dir;
  write_state_dict(dir.file("a.tgc"), sample_state());
  const std::vector<uint8_t> bytes = tgtest::read_bytes(dir.file("a.tgc"));
  for (size_t i = 0; i < bytes.size(); ++i)
    for (int bit : {0, 7}) {
      std::vector<uint8_t> damaged = bytes;
      damaged[i] ^= static_cast<uint8_t>(1 << bit);
      tgtest::write_bytes(dir.file("bad.tgc"), damaged);
      INFO("byte " << i << " bit " << bit);
      require_error([&] { read_state_dict(dir.file("bad.tgc")); }, {dir.file("bad.tgc")});
    }
  // The messages say what kind of damage it is.
  std::vector<uint8_t> damaged = bytes;
  damaged[0] = 'P';
  tgtest::write_bytes(dir.file("bad.tgc"), damaged);
  require_error([&] { read_state_dict(dir.file("bad.tgc")); }, {"not a tapegrad checkpoint"});
  damaged = bytes;
  damaged[40] ^= 1;
  tgtest::write_bytes(dir.file("bad.tgc"), damaged);
  require_error([&] { read_state_dict(dir.file("bad.tgc")); }, {"checksum mismatch", "corrupt"});
  require_error([&] { read_state_dict(dir.file("missing.tgc")); }, {"missing.tgc", "cannot open"});
}

TEST_CASE("a newer format version is refused by name", "[checkpoint]") {
  TempDir dir;
  write_state_dict(dir.file("a.tgc"), sample_state());
  std::vector<uint8_t> bytes = tgtest::read_bytes(dir.file("a.tgc"));
  bytes[8] = 2;  // version 2, with a checksum that matches
  uint32_t crc = static_cast<uint32_t>(crc32(0, bytes.data(), static_cast<uInt>(bytes.size() - 4)));
  std::memcpy(bytes.data() + bytes.size() - 4, &crc, 4);
  tgtest::write_bytes(dir.file("v2.tgc"), bytes);
  require_error([&] { read_state_dict(dir.file("v2.tgc")); },
                {"format version 2 is not supported", "reads version 1"});
}

TEST_CASE("a training state round-trips and the restored run continues bit for bit",
          "[checkpoint]") {
  TempDir dir;
  Generator init(1), noise(2);
  Net net(init);
  optim::Adam adam(net.parameters());
  for (int i = 0; i < 3; ++i) train_step(net, adam, noise);
  TrainingState state{&net, &adam, {{"noise", &noise}}};
  state.step = 3;
  state.epoch = 1;
  save_checkpoint(dir.file("run.tgc"), state);
  for (int i = 0; i < 2; ++i) train_step(net, adam, noise);

  Generator other_init(99), other_noise(98);
  Net restored(other_init);
  optim::Adam restored_adam(restored.parameters());
  TrainingState restored_state{&restored, &restored_adam, {{"noise", &other_noise}}};
  load_checkpoint(dir.file("run.tgc"), restored_state);
  REQUIRE(restored_state.step == 3);
  REQUIRE(restored_state.epoch == 1);
  REQUIRE(other_noise.state().seed == 2);
  for (int i = 0; i < 2; ++i) train_step(restored, restored_adam, other_noise);
  auto a = net.named_parameters(), b = restored.named_parameters();
  for (size_t i = 0; i < a.size(); ++i) {
    INFO(a[i].first);
    REQUIRE(same_bits(a[i].second, b[i].second));
  }
  REQUIRE(noise.offset() == other_noise.offset());
}

TEST_CASE("a mismatched checkpoint is rejected and changes nothing", "[checkpoint]") {
  TempDir dir;
  Generator g1(1), noise1(2);
  Net small(g1, 5);
  optim::Adam adam_small(small.parameters());
  train_step(small, adam_small, noise1);
  TrainingState saved{&small, &adam_small, {{"noise", &noise1}}};
  saved.step = 7;
  save_checkpoint(dir.file("small.tgc"), saved);

  Generator g2(3), noise2(4);
  Net wide(g2, 6);
  optim::Adam adam_wide(wide.parameters());
  train_step(wide, adam_wide, noise2);
  StateDict before = wide.state_dict();
  std::vector<std::vector<double>> model_before = values_of(before);
  std::vector<std::vector<double>> optimizer_before = values_of(adam_wide.state_dict());
  Generator::State noise_before = noise2.state();
  TrainingState target{&wide, &adam_wide, {{"noise", &noise2}}};
  target.step = 1;
  require_error([&] { load_checkpoint(dir.file("small.tgc"), target); },
                {"fc1.weight", "[5, 3]", "expected [6, 3]", "small.tgc", "nothing was loaded"});
  REQUIRE(values_of(wide.state_dict()) == model_before);
  REQUIRE(values_of(adam_wide.state_dict()) == optimizer_before);
  REQUIRE(noise2.state().offset == noise_before.offset);
  REQUIRE(target.step == 1);

  // Same model, but the run expects a generator the checkpoint does not have.
  Generator g3(1), noise3(2), extra(5);
  Net same(g3, 5);
  optim::Adam adam_same(same.parameters());
  TrainingState needs_more{&same, &adam_same, {{"noise", &noise3}, {"dropout", &extra}}};
  require_error([&] { load_checkpoint(dir.file("small.tgc"), needs_more); },
                {"no state for generator 'dropout'"});
  // A run without an optimizer cannot silently drop the checkpoint's optimizer state.
  TrainingState no_optimizer{&same, nullptr, {{"noise", &noise3}}};
  require_error([&] { load_checkpoint(dir.file("small.tgc"), no_optimizer); },
                {"has optimizer state but the run has none"});
}

TEST_CASE("a crash between writing the temporary file and renaming it keeps the old checkpoint",
          "[checkpoint]") {
  TempDir dir;
  std::string path = dir.file("run.tgc");
  StateDict old_state;
  old_state.add("w", tensor({1, 2, 3}));
  write_state_dict(path, old_state);
  StateDict new_state;
  new_state.add("w", tensor({4, 5, 6}));

  // A real crash: the child process dies (no destructors, no cleanup) right before the rename.
  pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    try {
      write_state_dict(path, new_state, [](const std::string&) { _exit(0); });
    } catch (...) {
    }
    _exit(1);  // not reached when the hook ran
  }
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  REQUIRE(read_state_dict(path).find("w")->to_vector() == std::vector<double>{1, 2, 3});
  // The complete temporary file was left behind by the crash; it never replaced the target.
  std::vector<std::string> leftovers = temporary_files_of(path);
  REQUIRE(leftovers.size() == 1);
  REQUIRE(leftovers[0].find(path + ".tmp-" + std::to_string(child) + "-") == 0);
  REQUIRE(read_state_dict(leftovers[0]).find("w")->to_vector() == std::vector<double>{4, 5, 6});

  // An exception at the same point: the target is intact and the temporary file removed.
  std::string temporary;
  REQUIRE_THROWS_AS(write_state_dict(path, new_state,
                                     [&](const std::string& t) {
                                       temporary = t;
                                       throw Error("simulated failure");
                                     }),
                    Error);
  REQUIRE_FALSE(std::filesystem::exists(temporary));
  REQUIRE(read_state_dict(path).find("w")->to_vector() == std::vector<double>{1, 2, 3});

  // And the next save goes through, removing what the crashed writer left.
  write_state_dict(path, new_state);
  REQUIRE(read_state_dict(path).find("w")->to_vector() == std::vector<double>{4, 5, 6});
  REQUIRE_FALSE(std::filesystem::exists(leftovers[0]));
  REQUIRE(temporary_files_of(path).empty());
}
