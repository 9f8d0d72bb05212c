// src/io/files.h — the one way tapegrad writes files (AtomicFile) and opens them for reading
// (InputFile, read_file). Every error is a tg::Error naming the operation, the file and, where
// the system gave one, errno's text.
//
// Writing. An AtomicFile's data goes to a temporary file in the target's directory. commit()
// flushes and fsyncs it, renames it over the target (atomic on POSIX file systems) and fsyncs the
// directory, so readers only ever see the old file or the complete new one, and the new one
// survives a power cut. If commit() is not reached (an exception, a full disk, a crash) the
// target keeps its previous contents.
//
// The temporary file is unnamed where the file system allows it (Linux's O_TMPFILE: a writer
// killed mid-write leaves nothing behind) and is linked to a name only during commit(); elsewhere
// it is created under that name at once. The name, "<target>.tmp-<pid>-<thread>-<counter>", is
// unique to the writer, so concurrent writers of one path never share a file: each commits whole
// (the last rename wins) or fails with its own error. While it has a name the temporary file is
// locked (flock) by its writer; the lock dies with the writer's process. Each new AtomicFile
// first removes the "<target>.tmp-*" files no live writer holds: what earlier crashed writers left.
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "tapegrad/error.h"

namespace tg {

class AtomicFile {
 public:
  // Removes stale temporaries of `path`, then creates this writer's; throws naming `op`.
  AtomicFile(const std::string& path, const char* op);
  ~AtomicFile();  // without commit(): the temporary file is removed, the target untouched
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  // Appends bytes (buffered); throws on a write error (disk full, file too large, ...).
  void write(const void* data, size_t bytes);
  // Flush, fsync, name the temporary file, run `before_rename` with its name (tests of crash
  // safety use it), rename it over the target, fsync the directory.
  void commit(const std::function<void(const std::string& temporary_path)>& before_rename =
                  nullptr);

  const std::string& path() const { return path_; }

 private:
  [[noreturn]] void fail_with_errno(const std::string& what, int error);
  void discard();

  std::string path_, directory_, temporary_path_;  // temporary_path_ empty while unnamed
  const char* op_;
  int descriptor_ = -1;
  FILE* stream_ = nullptr;
};

// The "<path>.tmp-*" names of temporaries that AtomicFile would clean up (for tests).
std::vector<std::string> temporary_files_of(const std::string& path);

// Tests switch unnamed (O_TMPFILE) temporaries off to exercise the named fallback, which file
// systems without O_TMPFILE get. On by default.
void set_unnamed_temporaries(bool enabled);

// A regular file open for reading. Opening never blocks (a FIFO is refused, not waited on) and a
// directory or device is refused by name.
class InputFile {
 public:
  InputFile(const std::string& path, const char* op);
  ~InputFile();
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;

  uint64_t size() const { return size_; }  // when it was opened
  // Reads up to `bytes`; returns how many it got (fewer only at the end of the file).
  size_t read(void* data, size_t bytes);
  // Hands the descriptor to the caller (gzdopen), who closes it.
  int release();

 private:
  std::string path_;
  const char* op_;
  int descriptor_ = -1;
  uint64_t size_ = 0;
};

// The whole of a regular file.
std::vector<uint8_t> read_file(const std::string& path, const char* op);

// v.resize(n, value), with running out of memory reported as a tg::Error naming `op` and `what`
// instead of a std::bad_alloc.
template <class Vector>
void resize_or_fail(Vector& v, size_t n, const char* op, const std::string& what,
                    typename Vector::value_type value = {}) {
  try {
    v.resize(n, value);
  } catch (const std::bad_alloc&) {
    fail(op, what, ": out of memory allocating ", n * sizeof(typename Vector::value_type), " bytes");
  } catch (const std::length_error&) {
    fail(op, what, ": ", n, " elements are more than a vector can hold");
  }
}

}  // namespace tg
