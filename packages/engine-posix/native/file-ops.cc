#include "file-ops.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "aligned-memory.h"

namespace escp {

namespace {

std::atomic<int64_t> open_files{0};
// Files placeFile made unnamed and linked (at their final name, or at their temporary name to
// replace what is at the final one), for tests that check which way a file went.
std::atomic<int64_t> unnamed_placements{0};

bool IsAligned(uint64_t v) { return v % kDirectAlignment == 0; }
uint64_t RoundUp(uint64_t v) { return (v + kDirectAlignment - 1) / kDirectAlignment * kDirectAlignment; }

// An aligned scratch buffer per I/O thread, for O_DIRECT I/O on memory that is not aligned (a
// block decrypted by node:crypto) or on an unaligned tail.
struct Bounce {
  void* data = nullptr;
  size_t size = 0;
  ~Bounce() { std::free(data); }
  void* Get(size_t want) {
    if (want <= size) return data;
    std::free(data);
    data = nullptr;
    size = 0;
    if (posix_memalign(&data, kDirectAlignment, want) != 0) return nullptr;
    size = want;
    return data;
  }
};
thread_local Bounce bounce;

bool IsAllZero(const uint8_t* p, size_t n) {
  // The first 16 bytes are zero and every byte equals the one 16 bytes before it.
  size_t head = std::min<size_t>(n, 16);
  for (size_t i = 0; i < head; i++) {
    if (p[i] != 0) return false;
  }
  return n <= 16 || std::memcmp(p, p + 16, n - 16) == 0;
}

bool IsDirect(int fd) { return (fcntl(fd, F_GETFL) & O_DIRECT) != 0; }

// Turns O_DIRECT off for this open file: the file system refused it, or the offset is not
// aligned. Linux allows the change on an open descriptor.
void DropDirect(int fd) {
  int fl = fcntl(fd, F_GETFL);
  if (fl >= 0) fcntl(fd, F_SETFL, fl & ~O_DIRECT);
}

// Uncached buffered writes (RWF_DONTCACHE, Linux 6.14): the pages a write fills are written
// back at once and dropped once clean, so a large file streams to the disk as it is written
// instead of piling up in the cache for an fsync or the flusher to write later. On this
// machine's ext4, a 1 GiB file in 1 MiB writes, fsync included: 2.2 GB/s (0.4-2.6) buffered,
// 3.8 GB/s (3.5-3.9) uncached, with less CPU. A kernel or file system without it (tmpfs)
// answers EOPNOTSUPP, and that descriptor writes through the cache from then on. Whole small
// files do not use it: writing back each file as it is created made 10,000 of them slower.
#ifndef RWF_DONTCACHE
#define RWF_DONTCACHE 0x00000080
#endif
constexpr int kTrackedFds = 1 << 16;
// Descriptors whose file system refused RWF_DONTCACHE; a descriptor past the table writes
// through the cache.
std::atomic<bool> uncached_refused[kTrackedFds];

bool MayWriteUncached(int fd) { return fd >= 0 && fd < kTrackedFds && !uncached_refused[fd].load(std::memory_order_relaxed); }

// A descriptor number comes back with every open: its new file has not refused anything yet.
void ForgetUncachedRefusal(int fd) {
  if (fd >= 0 && fd < kTrackedFds) uncached_refused[fd].store(false, std::memory_order_relaxed);
}

// Writes through the cache, uncached where the file system takes it.
ssize_t WriteAt(int fd, const uint8_t* p, size_t len, int64_t offset, bool uncached) {
  if (uncached && MayWriteUncached(fd)) {
    iovec v = {const_cast<uint8_t*>(p), len};
    ssize_t r = pwritev2(fd, &v, 1, offset, RWF_DONTCACHE);
    if (r >= 0 || errno != EOPNOTSUPP) return r;
    uncached_refused[fd].store(true, std::memory_order_relaxed);
  }
  return pwrite(fd, p, len, offset);
}

// Reads until `len` bytes, end of file, or (direct) a short read, which is the end of file.
ssize_t ReadFull(int fd, uint8_t* p, size_t len, int64_t offset, bool direct) {
  size_t done = 0;
  while (done < len) {
    ssize_t r = pread(fd, p + done, len - done, offset + static_cast<int64_t>(done));
    if (r < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (r == 0) break;
    done += static_cast<size_t>(r);
    if (direct && !IsAligned(static_cast<uint64_t>(r))) break;
  }
  return static_cast<ssize_t>(done);
}

// uncached: a buffered write may go uncached (WriteAt); O_DIRECT ignores the flag.
ssize_t WriteFull(int fd, const uint8_t* p, size_t len, int64_t offset, bool uncached = false) {
  size_t done = 0;
  while (done < len) {
    ssize_t r = WriteAt(fd, p + done, len - done, offset + static_cast<int64_t>(done), uncached);
    if (r < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    done += static_cast<size_t>(r);
  }
  return static_cast<ssize_t>(done);
}

// A job whose result is a number, or an errno from a named syscall.
class NumberJob : public Job {
 public:
  using Job::Job;
  void Complete(Napi::Env env) override {
    if (err_ != 0) {
      Napi::Error e = Napi::Error::New(env, message_.empty() ? std::strerror(err_) : message_);
      e.Set("errno", Napi::Number::New(env, -err_));
      e.Set("syscall", Napi::String::New(env, syscall_));
      deferred_.Reject(e.Value());
      return;
    }
    deferred_.Resolve(Result(env));
  }

 protected:
  virtual Napi::Value Result(Napi::Env env) { return Napi::Number::New(env, static_cast<double>(value_)); }
  void Fail(const char* syscall, int err = errno) {
    syscall_ = syscall;
    err_ = err;
  }
  int64_t value_ = 0;
  int err_ = 0;
  const char* syscall_ = "";
  std::string message_;
};

// cachestat(2) (Linux 6.5) has the same number on every architecture of the unified table.
#if !defined(__NR_cachestat) && (defined(__x86_64__) || defined(__aarch64__))
#define __NR_cachestat 451
#endif

// Whether at least half of a file's pages are in the page cache now. Such a file is read
// through the cache: O_DIRECT would fetch from the device what memory already holds. False
// where the kernel cannot tell (before 6.5: ENOSYS).
bool MostlyCached(int fd, int64_t size) {
#ifdef __NR_cachestat
  struct {
    uint64_t off, len;
  } range = {0, 0};  // len 0: to the end of the file
  struct {
    uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted;
  } cs = {};
  if (size <= 0 || syscall(__NR_cachestat, fd, &range, &cs, 0) != 0) return false;
  // The kernel counts in its own pages (4 KiB on x86_64, up to 64 KiB on arm64).
  long page = sysconf(_SC_PAGESIZE);
  if (page <= 0) return false;
  uint64_t pages = (static_cast<uint64_t>(size) + page - 1) / static_cast<uint64_t>(page);
  return cs.nr_cache * 2 >= pages;
#else
  (void)fd;
  (void)size;
  return false;
#endif
}

class OpenJob : public NumberJob {
 public:
  OpenJob(Napi::Env env, FileTable* files, std::string path, int flags, int perms, int64_t prealloc)
      : NumberJob(env), files_(files), path_(std::move(path)), flags_(flags), perms_(perms), prealloc_(prealloc) {}

  void Execute() override {
    bool write = (flags_ & kOpenWrite) != 0;
    // Reads: O_NONBLOCK so that a name swapped for a fifo since it was listed cannot hang the
    // open (it has no effect on regular files). Both: O_NOFOLLOW, so that a symlink planted at
    // the name since it was listed (a source named through one is read at its real path) cannot
    // send another file, or redirect a write.
    int oflags = O_CLOEXEC | O_NOFOLLOW | (write ? O_WRONLY : O_RDONLY | O_NONBLOCK);
    if (write && (flags_ & kOpenCreate) != 0) oflags |= O_CREAT | O_TRUNC;
    direct_ = (flags_ & kOpenDirect) != 0;
    fd_ = direct_ ? open(path_.c_str(), oflags | O_DIRECT, perms_) : -1;
    if (fd_ < 0 && (!direct_ || errno == EINVAL)) {
      // EINVAL with O_DIRECT: the file system does not take it (tmpfs, some FUSE). Buffered.
      direct_ = false;
      fd_ = open(path_.c_str(), oflags, perms_);
    }
    if (fd_ < 0) return Fail("open");
    open_files += 1;
    files_->Add(fd_);
    ForgetUncachedRefusal(fd_);
    struct stat st;
    if (fstat(fd_, &st) != 0) return FailClosing("fstat");
    if (!S_ISREG(st.st_mode)) {
      message_ = "not a regular file";
      return FailClosing("open", EINVAL);
    }
    size_ = st.st_size;
    allocated_ = static_cast<int64_t>(st.st_blocks) * 512;
    // A source mostly in the page cache (just written, or read before) is read from there, and
    // left there: the caller keeps its pages rather than dropping them behind the reads.
    if (!write && MostlyCached(fd_, size_)) {
      cached_ = true;
      if (direct_) {
        DropDirect(fd_);
        direct_ = false;
      }
    }
    if (!write && !direct_) posix_fadvise(fd_, 0, 0, POSIX_FADV_SEQUENTIAL);
    // Preallocate once per file (the first opener sees no blocks allocated yet). KEEP_SIZE: the
    // size stays what was written until the receiver sets the final size.
    if (write && prealloc_ > 0 && st.st_blocks == 0) {
      if (fallocate(fd_, FALLOC_FL_KEEP_SIZE, 0, prealloc_) != 0 && errno != EOPNOTSUPP && errno != ENOSYS && errno != EINVAL) {
        return FailClosing("fallocate");
      }
    }
  }

 protected:
  Napi::Value Result(Napi::Env env) override {
    Napi::Object o = Napi::Object::New(env);
    o.Set("fd", fd_);
    o.Set("size", static_cast<double>(size_));
    o.Set("allocated", static_cast<double>(allocated_));
    o.Set("direct", direct_);
    o.Set("cached", cached_);
    return o;
  }

 private:
  void FailClosing(const char* syscall, int err = errno) {
    Fail(syscall, err);
    files_->Remove(fd_);
    close(fd_);
    open_files -= 1;
    fd_ = -1;
  }
  FileTable* files_;
  std::string path_;
  int flags_;
  int perms_;
  int64_t prealloc_;
  int fd_ = -1;
  bool direct_ = false;
  bool cached_ = false;
  int64_t size_ = 0;
  int64_t allocated_ = 0;
};

// Keeps a JavaScript buffer alive, and pins aligned memory, while an I/O thread uses it.
class BufferJob : public NumberJob {
 public:
  BufferJob(Napi::Env env, int fd, Napi::TypedArray view, int64_t offset)
      : NumberJob(env), fd_(fd), offset_(offset), keep_(Napi::Persistent(static_cast<Napi::Object>(view))) {
    Napi::ArrayBuffer ab = view.ArrayBuffer();
    base_ = static_cast<uint8_t*>(ab.Data()) + view.ByteOffset();
    len_ = view.ByteLength();
    capacity_ = ab.ByteLength() - view.ByteOffset();
    block_ = PinAligned(ab.Data());
  }
  ~BufferJob() override { UnpinAligned(block_); }
  void Abandon() override { keep_.SuppressDestruct(); }

 protected:
  int fd_;
  int64_t offset_;
  uint8_t* base_;
  size_t len_;
  size_t capacity_;

 private:
  Napi::ObjectReference keep_;
  AlignedBlock* block_;
};

class ReadJob : public BufferJob {
 public:
  ReadJob(Napi::Env env, int fd, Napi::TypedArray view, int64_t offset, bool drop_behind)
      : BufferJob(env, fd, view, offset), drop_behind_(drop_behind) {}
  void Execute() override {
    bool direct = IsDirect(fd_);
    if (direct && !IsAligned(static_cast<uint64_t>(offset_))) {
      DropDirect(fd_);
      direct = false;
    }
    if (direct) {
      // O_DIRECT reads whole aligned units; past the end of file they come back short.
      size_t want = RoundUp(len_);
      bool in_place = IsAligned(reinterpret_cast<uintptr_t>(base_)) && want <= capacity_;
      uint8_t* target = in_place ? base_ : static_cast<uint8_t*>(bounce.Get(want));
      if (target == nullptr) return Fail("posix_memalign", ENOMEM);
      ssize_t n = ReadFull(fd_, target, want, offset_, true);
      if (n >= 0) {
        value_ = std::min<ssize_t>(n, static_cast<ssize_t>(len_));
        if (!in_place) std::memcpy(base_, target, static_cast<size_t>(value_));
        return;
      }
      if (errno != EINVAL) return Fail("pread");
      DropDirect(fd_);
    }
    ssize_t n = ReadFull(fd_, base_, len_, offset_, false);
    if (n < 0) return Fail("pread");
    value_ = n;
    // Read once and gone: keep a large copy from pushing everything else out of the cache. One
    // fadvise per window the reads move past, rather than one per block, which at 64 KiB blocks
    // cost a syscall and a page-cache walk per read.
    int64_t end = offset_ + n;
    if (drop_behind_ && n > 0 && end / kDropWindow != offset_ / kDropWindow) {
      int64_t window = end / kDropWindow * kDropWindow;
      posix_fadvise(fd_, window >= 2 * kDropWindow ? window - 2 * kDropWindow : 0, kDropWindow, POSIX_FADV_DONTNEED);
    }
  }

 private:
  // Blocks of a window may still be in flight on other threads: the window dropped is the one
  // before the previous.
  static constexpr int64_t kDropWindow = 8 << 20;
  bool drop_behind_;
};

class WriteJob : public BufferJob {
 public:
  WriteJob(Napi::Env env, int fd, Napi::TypedArray view, int64_t offset, bool skip_zero, bool may_pad, bool uncached)
      : BufferJob(env, fd, view, offset), skip_zero_(skip_zero), may_pad_(may_pad), uncached_(uncached) {}

  // Resolves with the padded end of file when the tail was padded for O_DIRECT, else 0.
  void Execute() override {
    if (skip_zero_ && IsAllZero(base_, len_)) return;
    bool direct = IsDirect(fd_);
    // Padding an unaligned length with zeros is right only at the end of the file; elsewhere
    // it would overwrite the next block.
    if (direct && (!IsAligned(static_cast<uint64_t>(offset_)) || (!IsAligned(len_) && !may_pad_))) {
      DropDirect(fd_);
      direct = false;
    }
    if (direct) {
      const uint8_t* source = base_;
      size_t want = RoundUp(len_);
      if (!IsAligned(reinterpret_cast<uintptr_t>(base_)) || want != len_) {
        auto* b = static_cast<uint8_t*>(bounce.Get(want));
        if (b == nullptr) return Fail("posix_memalign", ENOMEM);
        std::memcpy(b, base_, len_);
        std::memset(b + len_, 0, want - len_);
        source = b;
      }
      if (WriteFull(fd_, source, want, offset_) >= 0) {
        if (want != len_) value_ = offset_ + static_cast<int64_t>(want);
        return;
      }
      if (errno != EINVAL) return Fail("pwrite");
      DropDirect(fd_);
    }
    if (WriteFull(fd_, base_, len_, offset_, uncached_) < 0) Fail("pwrite");
  }

 private:
  bool skip_zero_;
  bool may_pad_;
  bool uncached_;
};

class TruncateJob : public NumberJob {
 public:
  TruncateJob(Napi::Env env, int fd, int64_t size) : NumberJob(env), fd_(fd), size_(size) {}
  void Execute() override {
    if (ftruncate(fd_, size_) != 0) Fail("ftruncate");
  }

 private:
  int fd_;
  int64_t size_;
};

class FsyncJob : public NumberJob {
 public:
  FsyncJob(Napi::Env env, int fd) : NumberJob(env), fd_(fd) {}
  void Execute() override {
    if (fsync(fd_) != 0) Fail("fsync");
  }

 private:
  int fd_;
};

class ExtentsJob : public NumberJob {
 public:
  ExtentsJob(Napi::Env env, int fd, int64_t size) : NumberJob(env), fd_(fd), size_(size) {}

  void Execute() override {
    int64_t pos = 0;
    while (pos < size_) {
      off_t data = lseek(fd_, pos, SEEK_DATA);
      if (data < 0) {
        if (errno == ENXIO) break;  // only a hole from here to the end
        if (errno == EINVAL || errno == EOPNOTSUPP) {
          unknown_ = true;  // the file system cannot tell
          return;
        }
        return Fail("lseek");
      }
      if (data >= size_) break;
      off_t hole = lseek(fd_, data, SEEK_HOLE);
      if (hole < 0) return Fail("lseek");
      int64_t end = std::min<int64_t>(hole, size_);
      extents_.push_back(static_cast<double>(data));
      extents_.push_back(static_cast<double>(end - data));
      pos = end;
    }
  }

 protected:
  // [offset, length, offset, length, ...], or null when the file system cannot tell.
  Napi::Value Result(Napi::Env env) override {
    if (unknown_) return env.Null();
    Napi::Float64Array out = Napi::Float64Array::New(env, extents_.size());
    std::copy(extents_.begin(), extents_.end(), out.Data());
    return out;
  }

 private:
  int fd_;
  int64_t size_;
  bool unknown_ = false;
  std::vector<double> extents_;
};

class SetAttributesJob : public NumberJob {
 public:
  SetAttributesJob(Napi::Env env, int fd, int64_t mode, int64_t uid, int64_t gid, bool has_times, timespec atime, timespec mtime)
      : NumberJob(env), fd_(fd), mode_(mode), uid_(uid), gid_(gid), has_times_(has_times), times_{atime, mtime} {}

  void Execute() override {
    if (uid_ >= 0 || gid_ >= 0) {
      if (fchown(fd_, static_cast<uid_t>(uid_), static_cast<gid_t>(gid_)) != 0) return Fail("fchown");
    }
    // After fchown, which clears the set-id bits.
    if (mode_ >= 0 && fchmod(fd_, static_cast<mode_t>(mode_ & 07777)) != 0) return Fail("fchmod");
    if (has_times_ && futimens(fd_, times_) != 0) return Fail("futimens");
  }

 private:
  int fd_;
  int64_t mode_;
  int64_t uid_;
  int64_t gid_;
  bool has_times_;
  timespec times_[2];
};

class CloseJob : public NumberJob {
 public:
  CloseJob(Napi::Env env, FileTable* files, int fd, bool drop_cache, int64_t logical_end, int64_t padded_end)
      : NumberJob(env), files_(files), fd_(fd), drop_cache_(drop_cache), logical_end_(logical_end), padded_end_(padded_end) {}

  void Execute() override {
    int err = 0;
    const char* syscall = "";
    if (padded_end_ > 0) {
      struct stat st;
      if (fstat(fd_, &st) == 0 && st.st_size == padded_end_ && ftruncate(fd_, logical_end_) != 0) {
        err = errno;
        syscall = "ftruncate";
      }
    }
    if (drop_cache_) posix_fadvise(fd_, 0, 0, POSIX_FADV_DONTNEED);
    // close() releases the descriptor even when it reports an error (Linux): never retry it.
    files_->Remove(fd_);
    if (close(fd_) != 0 && err == 0) {
      err = errno;
      syscall = "close";
    }
    open_files -= 1;
    if (err != 0) Fail(syscall, err);
  }

 private:
  FileTable* files_;
  int fd_;
  bool drop_cache_;
  int64_t logical_end_;
  int64_t padded_end_;
};

// A whole small file in one job: open, read from offset 0, close. Buffered, and without the
// DONTNEED of a large copy: for a file of a few KiB the three calls of a handle cost more than
// the I/O, and a cache of small files is worth keeping (cp keeps it too).
class ReadWholeJob : public BufferJob {
 public:
  ReadWholeJob(Napi::Env env, std::string path, Napi::TypedArray view) : BufferJob(env, -1, view, 0), path_(std::move(path)) {}

  void Execute() override {
    // O_NOFOLLOW: as for reads through a handle (OpenJob).
    int fd = open(path_.c_str(), O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return Fail("open");
    struct stat st;
    if (fstat(fd, &st) != 0) {
      Fail("fstat");
    } else if (!S_ISREG(st.st_mode)) {
      message_ = "not a regular file";
      Fail("open", EINVAL);
    } else {
      ssize_t n = ReadFull(fd, base_, len_, 0, false);
      if (n < 0) Fail("pread");
      else value_ = n;
    }
    close(fd);
  }

 private:
  std::string path_;
};

// A directory's entries with what lstat tells of each, and a symlink's target, in one job: a
// walk over a tree of small files otherwise costs the JavaScript thread a request, a wake and a
// stats object per entry. Resolves to { names, meta }: the names (and link targets) one after
// another in one buffer, and kListFields numbers per entry (see ListDirectoryJob::Result), the
// entries in byte order of their names. An entry lstat or readlink failed on has its errno.
class ListDirectoryJob : public NumberJob {
 public:
  ListDirectoryJob(Napi::Env env, std::string path, bool no_follow) : NumberJob(env), path_(std::move(path)), no_follow_(no_follow) {}

  void Execute() override {
    int fd = open(path_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | (no_follow_ ? O_NOFOLLOW : 0));
    if (fd < 0) return Fail("open");
    DIR* dir = fdopendir(fd);
    if (dir == nullptr) {
      Fail("fdopendir");
      close(fd);
      return;
    }
    for (;;) {
      errno = 0;
      dirent* d = readdir(dir);
      if (d == nullptr) {
        if (errno != 0) Fail("scandir");
        break;
      }
      const char* name = d->d_name;
      if (name[0] == '.' && (name[1] == 0 || (name[1] == '.' && name[2] == 0))) continue;
      Entry e;
      e.name_start = bytes_.size();
      e.name_length = std::strlen(name);
      bytes_.append(name, e.name_length);
      if (fstatat(dirfd(dir), name, &e.st, AT_SYMLINK_NOFOLLOW) != 0) {
        e.err = errno;
      } else if (S_ISLNK(e.st.st_mode)) {
        ReadLink(dirfd(dir), name, &e);
      }
      entries_.push_back(e);
    }
    closedir(dir);
    // In byte order of their names, as Buffer.compare orders them.
    std::sort(entries_.begin(), entries_.end(), [this](const Entry& a, const Entry& b) {
      int c = std::memcmp(bytes_.data() + a.name_start, bytes_.data() + b.name_start, std::min(a.name_length, b.name_length));
      return c != 0 ? c < 0 : a.name_length < b.name_length;
    });
  }

 protected:
  Napi::Value Result(Napi::Env env) override {
    Napi::Object out = Napi::Object::New(env);
    out.Set("names", Napi::Buffer<char>::Copy(env, bytes_.data(), bytes_.size()));
    Napi::Float64Array meta = Napi::Float64Array::New(env, entries_.size() * kListFields);
    double* m = meta.Data();
    for (const Entry& e : entries_) {
      const struct stat& st = e.st;
      double fields[kListFields] = {
          static_cast<double>(e.name_start), static_cast<double>(e.name_length), static_cast<double>(e.err),
          static_cast<double>(st.st_mode), static_cast<double>(st.st_uid), static_cast<double>(st.st_gid),
          static_cast<double>(st.st_size), static_cast<double>(st.st_blocks) * 512, static_cast<double>(st.st_atim.tv_sec),
          static_cast<double>(st.st_atim.tv_nsec), static_cast<double>(st.st_mtim.tv_sec), static_cast<double>(st.st_mtim.tv_nsec),
          static_cast<double>(e.link_start), static_cast<double>(e.link_length)};
      std::copy(fields, fields + kListFields, m);
      m += kListFields;
    }
    out.Set("meta", meta);
    return out;
  }

 private:
  static constexpr size_t kListFields = 14;
  struct Entry {
    size_t name_start = 0, name_length = 0, link_start = 0, link_length = 0;
    int err = 0;
    struct stat st = {};
  };

  // A symlink's target into bytes_, growing the buffer for a long one; errno into e->err.
  void ReadLink(int dfd, const char* name, Entry* e) {
    std::vector<char> buf(256);
    for (;;) {
      ssize_t n = readlinkat(dfd, name, buf.data(), buf.size());
      if (n < 0) {
        e->err = errno;
        return;
      }
      if (static_cast<size_t>(n) < buf.size()) {
        e->link_start = bytes_.size();
        e->link_length = static_cast<size_t>(n);
        bytes_.append(buf.data(), static_cast<size_t>(n));
        return;
      }
      if (buf.size() >= 1 << 20) {
        e->err = ENAMETOOLONG;
        return;
      }
      buf.resize(buf.size() * 4);
    }
  }

  std::string path_;
  bool no_follow_;
  std::string bytes_;
  std::vector<Entry> entries_;
};

// Whether a buffered write to a new file in a directory goes uncached (WriteAt): 1 or 0. Asked
// of an unnamed file there (O_TMPFILE), or of one created under a random name and unlinked at
// once where the file system has no unnamed files; 4 KiB of zeros are written to it.
class UncachedProbeJob : public NumberJob {
 public:
  UncachedProbeJob(Napi::Env env, std::string dir) : NumberJob(env), dir_(std::move(dir)) {}

  void Execute() override {
    int fd = open(dir_.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0) {
      std::string name = dir_ + "/.escp-probe-XXXXXX";
      fd = mkostemp(name.data(), O_CLOEXEC);
      if (fd < 0) return Fail("open");
      unlink(name.c_str());
    }
    static const uint8_t zeros[4096] = {};
    iovec v = {const_cast<uint8_t*>(zeros), sizeof zeros};
    value_ = pwritev2(fd, &v, 1, 0, RWF_DONTCACHE) == static_cast<ssize_t>(sizeof zeros) ? 1 : 0;
    close(fd);
  }

 private:
  std::string dir_;
};

// rename(2): a finished file into its final name, in a batch with others.
class RenameJob : public NumberJob {
 public:
  RenameJob(Napi::Env env, std::string from, std::string to) : NumberJob(env), from_(std::move(from)), to_(std::move(to)) {}

  void Execute() override {
    if (rename(from_.c_str(), to_.c_str()) != 0) Fail("rename");
  }

 private:
  std::string from_;
  std::string to_;
};

// A whole small file in one job: created exclusively (nothing may be at the name, a symlink
// included), written at offset 0, sized, given its attributes and closed. Whatever fails after
// the create removes the file again, so a failure leaves nothing behind.
//
// With a final name, the file is put there instead, whole or not at all: made unnamed in that
// directory (O_TMPFILE), filled, then linked at the final name, so that it never shows there
// unfinished, and a crash while it is written leaves nothing behind. Where something is at the
// final name, it is linked at the temporary name and renamed over it, which replaces a file or a
// symlink (never followed) and fails on a directory. Where it cannot be made unnamed or linked
// (a file system without O_TMPFILE, no linkat by descriptor and no /proc), it is created under
// the temporary name and renamed. On those two ways a crash between the link or create and the
// rename leaves a complete file at the temporary name, never a partial one at the final name. Measured on ext4, 10,000 files of 1-64 KiB: 0.35 s of kernel
// time unnamed, 0.52 s through a temporary name (0.33 s created in place).
class CreateWholeJob : public BufferJob {
 public:
  CreateWholeJob(Napi::Env env, std::string path, Napi::TypedArray view, int perms, int64_t size, bool skip_zero, int64_t mode, int64_t uid,
                 int64_t gid, bool has_times, timespec atime, timespec mtime, std::string final_path)
      : BufferJob(env, -1, view, 0),
        path_(std::move(path)),
        final_(std::move(final_path)),
        perms_(perms),
        size_(size),
        skip_zero_(skip_zero),
        mode_(mode),
        uid_(uid),
        gid_(gid),
        has_times_(has_times),
        times_{atime, mtime} {}

  void Execute() override {
    if (!final_.empty() && PlaceUnnamed()) return;
    int fd = open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, perms_);
    if (fd < 0) return Fail("open");
    Fill(fd);
    if (close(fd) != 0 && err_ == 0) Fail("close");
    if (err_ == 0 && !final_.empty() && rename(path_.c_str(), final_.c_str()) != 0) Fail("rename");
    if (err_ != 0) unlink(path_.c_str());
  }

 private:
  // The data, size and attributes into fd; false (with the error) on a failure.
  bool Fill(int fd) {
    bool write = !(skip_zero_ && IsAllZero(base_, len_));
    if (write && WriteFull(fd, base_, len_, 0) < 0) {
      Fail("pwrite");
    } else if (size_ > (write ? static_cast<int64_t>(len_) : 0) && ftruncate(fd, size_) != 0) {
      Fail("ftruncate");
    } else if ((uid_ >= 0 || gid_ >= 0) && fchown(fd, static_cast<uid_t>(uid_), static_cast<gid_t>(gid_)) != 0) {
      Fail("fchown");
    } else if (mode_ >= 0 && fchmod(fd, static_cast<mode_t>(mode_ & 07777)) != 0) {
      Fail("fchmod");
    } else if (has_times_ && futimens(fd, times_) != 0) {
      Fail("futimens");
    }
    return err_ == 0;
  }

  // True when the file is at its final name, or failed for good (err_ set); false to go through
  // the temporary name instead (no O_TMPFILE here, or no way to link it).
  bool PlaceUnnamed() {
    size_t slash = final_.rfind('/');
    std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : final_.substr(0, slash);
    int fd = open(dir.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, perms_);
    if (fd < 0) return false;
    if (!Fill(fd)) {
      close(fd);
      return true;
    }
    bool placed = LinkAt(fd, final_);
    // Something is at the final name: the file gets the temporary name, and replaces it from there.
    if (!placed && errno == EEXIST && LinkAt(fd, path_)) {
      placed = true;
      if (rename(path_.c_str(), final_.c_str()) != 0) {
        Fail("rename");
        unlink(path_.c_str());
      }
    }
    int link_err = errno;
    // Once linked, its data and attributes are in: close's result changes nothing of that.
    close(fd);
    if (placed) {
      if (err_ == 0) unnamed_placements += 1;
      return true;
    }
    // No way to link it here (no CAP_DAC_READ_SEARCH and no /proc, a file system without hard
    // links): through the temporary name. Any other failure is the file's.
    if (link_err == ENOENT || link_err == EPERM || link_err == EOPNOTSUPP || link_err == EMLINK) return false;
    Fail("linkat", link_err);
    return true;
  }

  // Links the unnamed file at name: by descriptor with CAP_DAC_READ_SEARCH, else through /proc.
  static bool LinkAt(int fd, const std::string& name) {
    if (linkat(fd, "", AT_FDCWD, name.c_str(), AT_EMPTY_PATH) == 0) return true;
    if (errno != ENOENT) return false;
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    return linkat(AT_FDCWD, proc, AT_FDCWD, name.c_str(), AT_SYMLINK_FOLLOW) == 0;
  }

  std::string path_;
  std::string final_;
  int perms_;
  int64_t size_;
  bool skip_zero_;
  int64_t mode_;
  int64_t uid_;
  int64_t gid_;
  bool has_times_;
  timespec times_[2];
};

}  // namespace

int64_t OpenFileCount() { return open_files.load(); }
int64_t UnnamedPlacementCount() { return unnamed_placements.load(); }

void FileTable::Add(int fd) {
  std::lock_guard<std::mutex> lock(mutex_);
  fds_.insert(fd);
}

void FileTable::Remove(int fd) {
  std::lock_guard<std::mutex> lock(mutex_);
  fds_.erase(fd);
}

void FileTable::CloseAll() {
  std::lock_guard<std::mutex> lock(mutex_);
  for (int fd : fds_) {
    close(fd);
    open_files -= 1;
  }
  fds_.clear();
}

std::unique_ptr<Job> MakeOpen(Napi::Env env, FileTable* files, std::string path, int flags, int perms, int64_t prealloc_bytes) {
  return std::make_unique<OpenJob>(env, files, std::move(path), flags, perms, prealloc_bytes);
}
std::unique_ptr<Job> MakeRead(Napi::Env env, int fd, Napi::TypedArray view, int64_t offset, bool drop_behind) {
  return std::make_unique<ReadJob>(env, fd, view, offset, drop_behind);
}
std::unique_ptr<Job> MakeWrite(Napi::Env env, int fd, Napi::TypedArray view, int64_t offset, bool skip_zero, bool may_pad, bool uncached) {
  return std::make_unique<WriteJob>(env, fd, view, offset, skip_zero, may_pad, uncached);
}
std::unique_ptr<Job> MakeTruncate(Napi::Env env, int fd, int64_t size) { return std::make_unique<TruncateJob>(env, fd, size); }
std::unique_ptr<Job> MakeFsync(Napi::Env env, int fd) { return std::make_unique<FsyncJob>(env, fd); }
std::unique_ptr<Job> MakeExtents(Napi::Env env, int fd, int64_t size) { return std::make_unique<ExtentsJob>(env, fd, size); }
std::unique_ptr<Job> MakeSetAttributes(Napi::Env env, int fd, int64_t mode, int64_t uid, int64_t gid, bool has_times,
                                       int64_t atime_sec, int64_t atime_nsec, int64_t mtime_sec, int64_t mtime_nsec) {
  timespec a{static_cast<time_t>(atime_sec), static_cast<long>(atime_nsec)};
  timespec m{static_cast<time_t>(mtime_sec), static_cast<long>(mtime_nsec)};
  return std::make_unique<SetAttributesJob>(env, fd, mode, uid, gid, has_times, a, m);
}
std::unique_ptr<Job> MakeListDirectory(Napi::Env env, std::string path, bool no_follow) {
  return std::make_unique<ListDirectoryJob>(env, std::move(path), no_follow);
}
std::unique_ptr<Job> MakeUncachedProbe(Napi::Env env, std::string dir) { return std::make_unique<UncachedProbeJob>(env, std::move(dir)); }

std::unique_ptr<Job> MakeRename(Napi::Env env, std::string from, std::string to) { return std::make_unique<RenameJob>(env, std::move(from), std::move(to)); }
std::unique_ptr<Job> MakeReadWhole(Napi::Env env, std::string path, Napi::TypedArray view) {
  return std::make_unique<ReadWholeJob>(env, std::move(path), view);
}
std::unique_ptr<Job> MakeCreateWhole(Napi::Env env, std::string path, Napi::TypedArray view, int perms, int64_t size, bool skip_zero, int64_t mode,
                                     int64_t uid, int64_t gid, bool has_times, int64_t atime_sec, int64_t atime_nsec, int64_t mtime_sec,
                                     int64_t mtime_nsec, std::string final_path) {
  timespec a{static_cast<time_t>(atime_sec), static_cast<long>(atime_nsec)};
  timespec m{static_cast<time_t>(mtime_sec), static_cast<long>(mtime_nsec)};
  return std::make_unique<CreateWholeJob>(env, std::move(path), view, perms, size, skip_zero, mode, uid, gid, has_times, a, m, std::move(final_path));
}
std::unique_ptr<Job> MakeClose(Napi::Env env, FileTable* files, int fd, bool drop_cache, int64_t logical_end, int64_t padded_end) {
  return std::make_unique<CloseJob>(env, files, fd, drop_cache, logical_end, padded_end);
}

}  // namespace escp
