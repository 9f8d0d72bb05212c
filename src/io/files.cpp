// src/io/files.cpp — temporary files, locks, fsync and rename (see files.h); opening for reading.
#include "files.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstring>

namespace tg {

namespace {

std::atomic<bool> unnamed_temporaries{true};
std::atomic<uint64_t> temporary_counter{0};

// "a/b/c.tgc" -> directory "a/b", prefix "a/b/", name "c.tgc"; "c.tgc" -> ".", "", "c.tgc".
struct PathParts {
  std::string directory, prefix, name;
};
PathParts split(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return {".", "", path};
  return {slash == 0 ? "/" : path.substr(0, slash), path.substr(0, slash + 1),
          path.substr(slash + 1)};
}

// "<target>.tmp-<pid>-<thread>-<counter>": unique among the writers of one machine.
std::string unique_temporary_name(const std::string& path) {
  return path + ".tmp-" + std::to_string(getpid()) + "-" + std::to_string(gettid()) + "-" +
         std::to_string(temporary_counter.fetch_add(1));
}

// True for "<name>.tmp-" followed by digits separated by dashes: the names AtomicFile gives its
// temporaries (and "<name>.tmp-<pid>", which tapegrad's first version used). Nothing else is
// ever removed, so a user's "<name>.tmp-backup" is safe.
bool is_temporary_of(const std::string& entry, const std::string& name) {
  const std::string prefix = name + ".tmp-";
  if (entry.size() <= prefix.size() || entry.compare(0, prefix.size(), prefix) != 0) return false;
  char previous = '-';
  for (size_t i = prefix.size(); i < entry.size(); ++i) {
    char c = entry[i];
    if (!std::isdigit(static_cast<unsigned char>(c)) && !(c == '-' && previous != '-')) return false;
    previous = c;
  }
  return previous != '-';
}

// Removes `file` unless a live writer holds its lock. Best effort: a file that cannot be opened,
// locked or checked is left alone.
void remove_if_stale(const std::string& file) {
  int descriptor = open(file.c_str(), O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (descriptor < 0) return;
  struct stat locked, named;
  // Getting the lock means its writer is gone. The name must still be the file we locked: its
  // writer may have renamed it over the target just before dying or finishing.
  if (flock(descriptor, LOCK_EX | LOCK_NB) == 0 && fstat(descriptor, &locked) == 0 &&
      S_ISREG(locked.st_mode) && lstat(file.c_str(), &named) == 0 &&
      named.st_dev == locked.st_dev && named.st_ino == locked.st_ino)
    unlink(file.c_str());
  close(descriptor);  // and with it the lock
}

}  // namespace

std::vector<std::string> temporary_files_of(const std::string& path) {
  PathParts parts = split(path);
  std::vector<std::string> files;
  DIR* directory = opendir(parts.directory.c_str());
  if (!directory) return files;
  while (const dirent* entry = readdir(directory))
    if (is_temporary_of(entry->d_name, parts.name)) files.push_back(parts.prefix + entry->d_name);
  closedir(directory);
  return files;
}

void set_unnamed_temporaries(bool enabled) { unnamed_temporaries = enabled; }

// ---------------------------------------------------------------- AtomicFile

AtomicFile::AtomicFile(const std::string& path, const char* op) : path_(path), op_(op) {
  PathParts parts = split(path);
  directory_ = parts.directory;
  check(!parts.name.empty() && parts.name != "." && parts.name != "..", op, path,
        ": not a file name");
  struct stat target;
  check(stat(path.c_str(), &target) != 0 || !S_ISDIR(target.st_mode), op, path,
        ": is a directory");
  for (const std::string& file : temporary_files_of(path)) remove_if_stale(file);

  // An unnamed file in the target's directory, where the file system supports it (linking it
  // to a name later goes through /proc/self/fd).
  if (unnamed_temporaries && access("/proc/self/fd", X_OK) == 0) {
    descriptor_ = open(directory_.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0666);
    if (descriptor_ < 0 && errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
      fail_with_errno("cannot create", errno);
    if (descriptor_ >= 0) flock(descriptor_, LOCK_EX);  // held from before it has a name
  }
  // Otherwise a named one, locked at once. A cleaner may take it for a dead writer's in the
  // instant before the lock and unlink it; then its link count is 0 and the next name is tried.
  for (int attempt = 0; descriptor_ < 0; ++attempt) {
    std::string candidate = unique_temporary_name(path);
    int descriptor = open(candidate.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (descriptor < 0) {
      if (errno == EEXIST && attempt < 100) continue;
      fail_with_errno("cannot create", errno);
    }
    struct stat info;
    bool locked = flock(descriptor, LOCK_EX) == 0;  // false where locks are not supported
    if (locked && (fstat(descriptor, &info) != 0 || info.st_nlink == 0) && attempt < 100) {
      close(descriptor);
      continue;
    }
    descriptor_ = descriptor;
    temporary_path_ = candidate;
  }
  stream_ = fdopen(descriptor_, "wb");
  if (!stream_) fail_with_errno("cannot create", errno);
}

AtomicFile::~AtomicFile() { discard(); }

void AtomicFile::discard() {
  if (!temporary_path_.empty()) unlink(temporary_path_.c_str());  // still locked: nobody else's
  temporary_path_.clear();
  if (stream_) std::fclose(stream_);  // closes the descriptor too
  else if (descriptor_ >= 0) close(descriptor_);
  stream_ = nullptr;
  descriptor_ = -1;
}

void AtomicFile::fail_with_errno(const std::string& what, int error) {
  discard();
  fail(op_, path_, ": ", what, ": ", std::strerror(error));
}

void AtomicFile::write(const void* data, size_t bytes) {
  check(stream_ != nullptr, op_, path_, ": write after commit");
  if (bytes > 0 && std::fwrite(data, 1, bytes, stream_) != bytes)
    fail_with_errno("writing failed", errno);
}

void AtomicFile::commit(const std::function<void(const std::string&)>& before_rename) {
  check(stream_ != nullptr, op_, path_, ": commit() called twice");
  if (std::fflush(stream_) != 0 || fsync(descriptor_) != 0)
    fail_with_errno("writing failed", errno);
  for (int attempt = 0; temporary_path_.empty(); ++attempt) {  // an unnamed file gets its name
    std::string candidate = unique_temporary_name(path_);
    std::string self = "/proc/self/fd/" + std::to_string(descriptor_);
    if (linkat(AT_FDCWD, self.c_str(), AT_FDCWD, candidate.c_str(), AT_SYMLINK_FOLLOW) == 0)
      temporary_path_ = candidate;
    else if (errno != EEXIST || attempt >= 100)
      fail_with_errno("cannot name the temporary file " + candidate, errno);
  }
  if (before_rename) before_rename(temporary_path_);
  if (std::rename(temporary_path_.c_str(), path_.c_str()) != 0)
    fail_with_errno("cannot rename " + temporary_path_ + " over it", errno);
  temporary_path_.clear();  // it is the target now
  std::fclose(stream_);     // releases the lock; the data is already on disk
  stream_ = nullptr;
  descriptor_ = -1;
  // Make the rename itself durable. It has happened, so a file system that cannot sync a
  // directory is no reason to report the write as failed.
  int directory = open(directory_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (directory >= 0) {
    fsync(directory);
    close(directory);
  }
}

// ---------------------------------------------------------------- reading

InputFile::InputFile(const std::string& path, const char* op) : path_(path), op_(op) {
  // O_NONBLOCK: opening a FIFO would otherwise wait for a writer.
  descriptor_ = open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (descriptor_ < 0) fail(op, path, ": cannot open: ", std::strerror(errno));
  struct stat info;
  const char* problem = nullptr;
  if (fstat(descriptor_, &info) != 0) problem = std::strerror(errno);
  else if (S_ISDIR(info.st_mode)) problem = "is a directory, not a file";
  else if (!S_ISREG(info.st_mode)) problem = "not a regular file";
  if (problem) {
    close(descriptor_);
    fail(op, path, ": ", problem);
  }
  size_ = static_cast<uint64_t>(info.st_size);
  fcntl(descriptor_, F_SETFL, fcntl(descriptor_, F_GETFL) & ~O_NONBLOCK);
}

InputFile::~InputFile() {
  if (descriptor_ >= 0) close(descriptor_);
}

size_t InputFile::read(void* data, size_t bytes) {
  size_t done = 0;
  while (done < bytes) {
    ssize_t got = ::read(descriptor_, static_cast<char*>(data) + done, bytes - done);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) fail(op_, path_, ": read error: ", std::strerror(errno));
    if (got == 0) break;
    done += static_cast<size_t>(got);
  }
  return done;
}

int InputFile::release() {
  int descriptor = descriptor_;
  descriptor_ = -1;
  return descriptor;
}

std::vector<uint8_t> read_file(const std::string& path, const char* op) {
  InputFile file(path, op);
  std::vector<uint8_t> data;
  resize_or_fail(data, file.size(), op, path);
  data.resize(file.read(data.data(), data.size()));  // shorter if it shrank since the open
  return data;
}

}  // namespace tg
