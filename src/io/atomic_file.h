// src/io/atomic_file.h — write a file so that it appears complete or not at all.
//
// Data goes to "<path>.tmp-<pid>" beside the target; commit() flushes it, fsyncs it, renames
// it over the target (rename is atomic on POSIX file systems) and fsyncs the directory, so the
// new file survives a power cut too. If commit() is never reached
// (an exception, a crash), the target is untouched and the temporary file is removed.
#pragma once

#include <cstdio>
#include <string>

namespace tg {

class AtomicFile {
 public:
  AtomicFile(const std::string& path, const char* op);  // throws naming `op` if it cannot open
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  FILE* stream() { return stream_; }
  const std::string& temporary_path() const { return temporary_path_; }
  void write(const void* data, size_t bytes);  // throws on a short write (disk full, ...)
  void commit();

 private:
  std::string path_, temporary_path_;
  const char* op_;
  FILE* stream_ = nullptr;
};

}  // namespace tg
