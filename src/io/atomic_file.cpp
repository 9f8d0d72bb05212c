// src/io/atomic_file.cpp — temporary file, fsync, rename.
#include "atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>

#include <cerrno>
#include <cstring>

#include "tapegrad/error.h"

namespace tg {

AtomicFile::AtomicFile(const std::string& path, const char* op)
    : path_(path), temporary_path_(path + ".tmp-" + std::to_string(getpid())), op_(op) {
  stream_ = std::fopen(temporary_path_.c_str(), "wb");
  check(stream_ != nullptr, op_, "cannot create ", temporary_path_, ": ", std::strerror(errno));
}

AtomicFile::~AtomicFile() {
  if (stream_) {  // not committed: leave the target as it was
    std::fclose(stream_);
    std::remove(temporary_path_.c_str());
  }
}

void AtomicFile::write(const void* data, size_t bytes) {
  check(std::fwrite(data, 1, bytes, stream_) == bytes, op_, "writing ", temporary_path_,
        " failed: ", std::strerror(errno));
}

void AtomicFile::commit() {
  check(stream_ != nullptr, op_, "commit() called twice for ", path_);
  bool flushed = std::fflush(stream_) == 0 && fsync(fileno(stream_)) == 0;
  int saved_errno = errno;
  bool closed = std::fclose(stream_) == 0;
  stream_ = nullptr;
  if (!flushed || !closed) {
    std::remove(temporary_path_.c_str());
    fail(op_, "writing ", temporary_path_, " failed: ", std::strerror(saved_errno));
  }
  if (std::rename(temporary_path_.c_str(), path_.c_str()) != 0) {
    saved_errno = errno;
    std::remove(temporary_path_.c_str());
    fail(op_, "cannot rename ", temporary_path_, " to ", path_, ": ", std::strerror(saved_errno));
  }
  // Make the rename itself durable: sync the directory that holds the new name.
  std::string directory = path_.find('/') == std::string::npos
                              ? std::string(".")
                              : path_.substr(0, std::max<size_t>(path_.rfind('/'), 1));
  int fd = open(directory.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    fsync(fd);
    close(fd);
  }
}

}  // namespace tg
