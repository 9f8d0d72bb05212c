// tests/test_files.cpp — what every file tapegrad reads or writes shares (src/io/files.h): writes
// that fail (here: past a file-size limit) keep the old file and leave no temporary, readers
// refuse directories, FIFOs and unreadable paths with errno's text, stale temporaries of dead
// writers are removed and live writers' kept, concurrent writers and readers of one path never
// see a partial file, and a writer killed at random moments never damages the checkpoint.
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <random>
#include <thread>

#include "../src/io/files.h"
#include "file_helpers.h"
#include "helpers.h"

using namespace tg;
using tgtest::require_error;
using tgtest::TempDir;

namespace {

// Files may grow to at most `bytes` while this lives (RLIMIT_FSIZE): a write past it fails with
// EFBIG, "File too large", as a full disk fails with ENOSPC.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    getrlimit(RLIMIT_FSIZE, &saved_);
    previous_handler_ = signal(SIGXFSZ, SIG_IGN);  // else the kernel ends the process
    rlimit limit = saved_;
    limit.rlim_cur = bytes;
    setrlimit(RLIMIT_FSIZE, &limit);
  }
  ~FileSizeLimit() {
    setrlimit(RLIMIT_FSIZE, &saved_);
    signal(SIGXFSZ, previous_handler_);
  }

 private:
  rlimit saved_;
  void (*previous_handler_)(int);
};

std::vector<std::string> names_in(const std::string& directory) {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(directory))
    names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// Values no compressor can shrink much, so that the files written are as large as their data.
std::vector<double> noise_values(size_t n, double low, double high) {
  std::vector<double> values(n);
  uint64_t state = 88172645463325252ull;
  for (double& v : values) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    v = std::floor(low + (high - low + 1) * static_cast<double>(state >> 11) / 9007199254740992.0);
  }
  return values;
}

StateDict stamped_state(double stamp, int64_t size) {
  StateDict state;
  state.add_real("stamp", stamp);
  state.add("data", full({size}, stamp));
  return state;
}

// Every writer of the library, writing a small file (big = false) or one of more than 16 KiB.
struct Writer {
  std::string name, file;
  std::function<void(const std::string&, bool)> write;
};
std::vector<Writer> every_writer() {
  return {
      {"save_checkpoint", "a.tgc",
       [](const std::string& path, bool big) {
         write_state_dict(path, stamped_state(1, big ? 10000 : 1));
       }},
      {"write_idx", "a.idx",
       [](const std::string& path, bool big) {
         data::write_idx(path, tensor(noise_values(big ? 20000 : 4, 0, 255)));
       }},
      {"write_idx", "a.idx.gz",
       [](const std::string& path, bool big) {
         data::write_idx(path, tensor(noise_values(big ? 40000 : 4, 0, 255)));
       }},
      {"write_png", "a.png",
       [](const std::string& path, bool big) {
         Image image(big ? 200 : 2, big ? 200 : 2, 1);
         std::vector<double> v = noise_values(image.pixels.size(), 0, 255);
         for (size_t i = 0; i < v.size(); ++i) image.pixels[i] = static_cast<uint8_t>(v[i]);
         write_png(path, image);
       }},
      {"write_csv", "a.csv",
       [](const std::string& path, bool big) {
         std::vector<std::vector<double>> rows(big ? 2000 : 1, {1.25, 2.5, 0.1});
         data::write_csv(path, {"a", "b", "c"}, rows);
       }},
  };
}

}  // namespace

TEST_CASE("a write that fails keeps the old file and leaves no temporary, for every writer",
          "[files]") {
  for (const Writer& writer : every_writer()) {
    INFO(writer.file);
    TempDir dir;
    const std::string path = dir.file(writer.file);
    writer.write(path, false);
    const std::vector<uint8_t> before = tgtest::read_bytes(path);
    {
      FileSizeLimit limit(16384);
      require_error([&] { writer.write(path, true); },
                    {writer.name, path, "writing failed", "File too large"});
    }
    REQUIRE(tgtest::read_bytes(path) == before);
    REQUIRE(names_in(dir.path()) == std::vector<std::string>{writer.file});
    writer.write(path, true);  // without the limit it goes through
    REQUIRE(tgtest::read_bytes(path).size() > 16384);
  }
}

TEST_CASE("a write into a missing folder or over a directory names the problem", "[files]") {
  TempDir dir;
  std::filesystem::create_directory(dir.file("folder"));
  for (const Writer& writer : every_writer()) {
    INFO(writer.file);
    require_error([&] { writer.write(dir.file("missing/") + writer.file, false); },
                  {writer.name, "missing/" + writer.file, "cannot create",
                   "No such file or directory"});
    require_error([&] { writer.write(dir.file("folder"), false); },
                  {writer.name, dir.file("folder"), "is a directory"});
  }
  REQUIRE(names_in(dir.path()) == std::vector<std::string>{"folder"});
}

TEST_CASE("every reader refuses directories, FIFOs and unreadable paths with the reason",
          "[files]") {
  TempDir dir;
  const bool root = geteuid() == 0;  // root reads anything: "Permission denied" needs a user
  for (std::string suffix : {"", ".gz"}) {  // read_idx of "x.gz" reads gzip
    std::filesystem::create_directory(dir.file("folder" + suffix));
    REQUIRE(mkfifo(dir.file("fifo" + suffix).c_str(), 0600) == 0);
    std::filesystem::create_symlink("loop" + suffix, dir.file("loop" + suffix));  // to itself
    tgtest::write_bytes(dir.file("secret" + suffix), {1, 2, 3});
    REQUIRE(chmod(dir.file("secret" + suffix).c_str(), 0) == 0);
  }
  tgtest::write_bytes(dir.file("plain"), {1, 2, 3});
  Generator init(0);
  nn::Linear model(2, 2, init);
  TrainingState state{&model, nullptr, {}};
  struct Reader {
    std::string op, suffix;
    std::function<void(const std::string&)> read;
  };
  const std::vector<Reader> readers = {
      {"load_checkpoint", "", [](const std::string& p) { read_state_dict(p); }},
      {"load_checkpoint", "", [&](const std::string& p) { load_checkpoint(p, state); }},
      {"read_idx", "", [](const std::string& p) { data::read_idx(p); }},
      {"read_idx", ".gz", [](const std::string& p) { data::read_idx(p); }},
      {"read_png", "", [](const std::string& p) { read_png(p); }},
  };
  for (const Reader& reader : readers) {
    auto at = [&](const std::string& name) { return dir.file(name + reader.suffix); };
    INFO(reader.op << " of \"" << reader.suffix << "\" files");
    require_error([&] { reader.read(at("folder")); }, {reader.op, at("folder"), "is a directory"});
    require_error([&] { reader.read(at("fifo")); },  // refused at once, not waited on
                  {reader.op, at("fifo"), "not a regular file"});
    require_error([&] { reader.read(at("plain/x")); },
                  {reader.op, at("plain/x"), "cannot open", "Not a directory"});
    require_error([&] { reader.read(at("loop")); },
                  {reader.op, at("loop"), "cannot open", "Too many levels of symbolic links"});
    require_error([&] { reader.read(at("absent")); },
                  {reader.op, at("absent"), "cannot open", "No such file or directory"});
    if (!root)
      require_error([&] { reader.read(at("secret")); },
                    {reader.op, at("secret"), "cannot open", "Permission denied"});
  }
}

TEST_CASE("stale temporaries of dead writers are removed, everything else is kept", "[files]") {
  TempDir dir;
  const std::string path = dir.file("run.tgc");
  write_state_dict(path, stamped_state(1, 4));
  // What crashed writers leave: tapegrad 0.1's "<name>.tmp-<pid>" and today's names.
  for (std::string name : {"run.tgc.tmp-4242", "run.tgc.tmp-4242-4243-7"})
    tgtest::write_bytes(dir.file(name), std::vector<uint8_t>(1000, 7));
  // Not ours: a user's file, another target's temporary, a directory.
  for (std::string name : {"run.tgc.tmp-backup", "run.tgc.tmp-1-", "other.tgc.tmp-4242"})
    tgtest::write_bytes(dir.file(name), {1});
  std::filesystem::create_directory(dir.file("run.tgc.tmp-99"));
  // A live writer's temporary: locked, as AtomicFile locks its own.
  tgtest::write_bytes(dir.file("run.tgc.tmp-5-6-7"), {2});
  int live = open(dir.file("run.tgc.tmp-5-6-7").c_str(), O_RDWR);
  REQUIRE(live >= 0);
  REQUIRE(flock(live, LOCK_EX) == 0);

  REQUIRE(temporary_files_of(path).size() == 4);
  write_state_dict(path, stamped_state(2, 4));
  REQUIRE(names_in(dir.path()) ==
          std::vector<std::string>{"other.tgc.tmp-4242", "run.tgc", "run.tgc.tmp-1-",
                                   "run.tgc.tmp-5-6-7", "run.tgc.tmp-99", "run.tgc.tmp-backup"});
  close(live);  // the writer died: its file is stale now
  write_png(path, Image(1, 1, 1));  // any writer of the path cleans up
  REQUIRE(temporary_files_of(path) == std::vector<std::string>{dir.file("run.tgc.tmp-99")});
}

TEST_CASE("concurrent writers of one path each commit whole; readers see only complete files",
          "[files]") {
  for (bool unnamed : {true, false}) {
    INFO((unnamed ? "O_TMPFILE temporaries" : "named temporaries"));
    set_unnamed_temporaries(unnamed);
    TempDir dir;
    const std::string path = dir.file("shared.tgc");
    write_state_dict(path, stamped_state(0, 2000));
    std::atomic<int> writers_done{0}, failures{0}, loads{0};
    std::atomic<bool> bad_load{false};
    auto writer = [&](int id) {
      for (int i = 1; i <= 25; ++i) {
        try {
          write_state_dict(path, stamped_state(id * 1000 + i, 2000));
        } catch (const Error&) {
          ++failures;
        }
      }
      ++writers_done;
    };
    std::thread a(writer, 1), b(writer, 2);
    while (writers_done < 2) {
      try {
        StateDict state = read_state_dict(path);
        double stamp = state.find("stamp")->item();
        for (double v : state.find("data")->to_vector()) bad_load = bad_load || v != stamp;
        ++loads;
      } catch (const Error&) {
        bad_load = true;
      }
    }
    a.join();
    b.join();
    REQUIRE(failures == 0);
    REQUIRE_FALSE(bad_load);
    REQUIRE(loads > 0);
    REQUIRE(temporary_files_of(path).empty());
    double last = read_state_dict(path).find("stamp")->item();
    REQUIRE((last == 1025 || last == 2025));
  }
  set_unnamed_temporaries(true);
}

TEST_CASE("a saving process killed at random moments never damages the checkpoint", "[files]") {
  TempDir dir;
  const std::string path = dir.file("run.tgc");
  const int64_t size = 1 << 18;  // 1 MiB of data: a save takes a while, kills land inside it
  write_state_dict(path, stamped_state(0, size));
  std::mt19937 random(12345);
  int rounds_with_leftovers = 0;
  const int rounds = 30;
  for (int round = 0; round < rounds; ++round) {
    const bool unnamed = round % 2 == 0;  // both kinds of temporary
    set_unnamed_temporaries(unnamed);
    pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0) {  // saves states round·1000 + 1, + 2, ... until killed (10 s at most)
      auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      for (int i = 1; std::chrono::steady_clock::now() < end; ++i) {
        try {
          write_state_dict(path, stamped_state(round * 1000 + i, size));
        } catch (...) {
          _exit(2);
        }
      }
      _exit(1);
    }
    std::this_thread::sleep_for(std::chrono::microseconds(1000 + random() % 20000));
    kill(child, SIGKILL);
    int status = 0;
    REQUIRE(waitpid(child, &status, 0) == child);
    REQUIRE(WIFSIGNALED(status));  // it was still saving, not failed or finished

    // The checkpoint is one complete state: the first, or one the child saved, never a mix.
    StateDict state = read_state_dict(path);
    const double stamp = state.find("stamp")->item();
    INFO("round " << round << ", stamp " << stamp);
    REQUIRE((stamp == 0 || std::floor(stamp / 1000) == round ||
             std::floor(stamp / 1000) == round - 1));
    std::vector<double> values = state.find("data")->to_vector();
    REQUIRE(std::all_of(values.begin(), values.end(), [&](double v) { return v == stamp; }));

    // The next save removes whatever the killed writer left.
    if (!temporary_files_of(path).empty()) ++rounds_with_leftovers;
    write_state_dict(path, stamped_state(round * 1000 + 999, size));
    REQUIRE(temporary_files_of(path).empty());
    REQUIRE(names_in(dir.path()) == std::vector<std::string>{"run.tgc"});
  }
  set_unnamed_temporaries(true);
  // Named temporaries exist for the whole save, so most kills in those rounds leave one: the
  // cleanup above was exercised.
  REQUIRE(rounds_with_leftovers > 0);
}
