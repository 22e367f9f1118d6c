// The engine's file operations, each a Job run on an I/O thread. They report errno and the
// failing syscall; the TypeScript layer turns those into escp's ESCP_ERR_IO errors.
#pragma once
#include <napi.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_set>

#include "io-threads.h"

namespace escp {

// Open flags passed from TypeScript.
constexpr int kOpenWrite = 1;
constexpr int kOpenCreate = 2;
constexpr int kOpenDirect = 4;

int64_t OpenFileCount();
// Files placeFile made unnamed (O_TMPFILE) and linked, since the module loaded.
int64_t UnnamedPlacementCount();

// The descriptors one JavaScript environment has open through the engine. A worker thread
// that is terminated mid-transfer never closes its handles; its cleanup closes what is left.
class FileTable {
 public:
  void Add(int fd);
  void Remove(int fd);
  void CloseAll();

 private:
  std::mutex mutex_;
  std::unordered_set<int> fds_;
};

std::unique_ptr<Job> MakeOpen(Napi::Env env, FileTable* files, std::string path, int flags, int perms, int64_t prealloc_bytes);
// drop_behind: a buffered read drops the pages it moved past from the cache (read once and gone).
std::unique_ptr<Job> MakeRead(Napi::Env env, int fd, Napi::TypedArray view, int64_t offset, bool drop_behind);
// may_pad: this write ends the file, so O_DIRECT may pad its unaligned tail with zeros.
// uncached: written buffered, it goes uncached (RWF_DONTCACHE) where the file system takes it.
std::unique_ptr<Job> MakeWrite(Napi::Env env, int fd, Napi::TypedArray view, int64_t offset, bool skip_zero, bool may_pad, bool uncached);
std::unique_ptr<Job> MakeTruncate(Napi::Env env, int fd, int64_t size);
std::unique_ptr<Job> MakeFsync(Napi::Env env, int fd);
std::unique_ptr<Job> MakeExtents(Napi::Env env, int fd, int64_t size);
// Owner (uid/gid < 0: keep), mode (< 0: keep), times (has_times false: keep).
std::unique_ptr<Job> MakeSetAttributes(Napi::Env env, int fd, int64_t mode, int64_t uid, int64_t gid, bool has_times,
                                       int64_t atime_sec, int64_t atime_nsec, int64_t mtime_sec, int64_t mtime_nsec);
// Closes fd. A handle that padded the tail of a file for O_DIRECT passes the logical end and the
// padded end: the padding is cut if nothing was written after it. drop_cache: fadvise DONTNEED.
std::unique_ptr<Job> MakeClose(Napi::Env env, FileTable* files, int fd, bool drop_cache, int64_t logical_end, int64_t padded_end);

// A directory's entries (not . and ..) with their lstat and a symlink's target: { names, meta }.
// no_follow: a symlink at path is refused (ENOTDIR, as O_DIRECTORY | O_NOFOLLOW gives), not followed.
std::unique_ptr<Job> MakeListDirectory(Napi::Env env, std::string path, bool no_follow);
// Whether buffered writes to new files in dir go uncached (RWF_DONTCACHE): 1 or 0.
std::unique_ptr<Job> MakeUncachedProbe(Napi::Env env, std::string dir);
// rename(from, to).
std::unique_ptr<Job> MakeRename(Napi::Env env, std::string from, std::string to);
// Reads a whole file of at most the view's length from offset 0: open, read, close in one job.
std::unique_ptr<Job> MakeReadWhole(Napi::Env env, std::string path, Napi::TypedArray view);
// Creates path exclusively with perms, writes the view at offset 0 (skip_zero: not when all
// zero), extends it to size, sets owner, mode and times as MakeSetAttributes does, and closes
// it; any failure after the create removes the file.
std::unique_ptr<Job> MakeCreateWhole(Napi::Env env, std::string path, Napi::TypedArray view, int perms, int64_t size, bool skip_zero, int64_t mode,
                                     int64_t uid, int64_t gid, bool has_times, int64_t atime_sec, int64_t atime_nsec, int64_t mtime_sec,
                                     int64_t mtime_nsec, std::string final_path);

}  // namespace escp
