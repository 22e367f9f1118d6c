// The raw module: argument checks, then each call becomes a Job on this environment's I/O
// threads and returns a promise. Types for it are in src/binding.ts.
#include <napi.h>

#include <cmath>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "aligned-memory.h"
#include "file-ops.h"
#include "io-threads.h"

namespace escp {
namespace {

// Each thread has one I/O outstanding, so the thread count is the queue depth the device sees
// with O_DIRECT. Measured on the 2-core benchmark VM, 64 KiB O_DIRECT reads with 16 in flight:
// 4 threads 1.23-1.31 GB/s, 8 threads 1.52-1.61, 16 threads 1.48-1.58 (fio libaio iodepth 16
// 1.55-2.32 in the same runs). Idle threads cost only their stacks; each worker thread of a
// transfer has its own set. ESCP_POSIX_THREADS overrides it (1 to 64).
constexpr size_t kDefaultThreads = 8;

size_t ThreadCount() {
  const char* v = std::getenv("ESCP_POSIX_THREADS");
  if (v == nullptr) return kDefaultThreads;
  long n = std::strtol(v, nullptr, 10);
  return n >= 1 && n <= 64 ? static_cast<size_t>(n) : kDefaultThreads;
}
constexpr double kMaxOffset = 9007199254740991.0;  // 2^53 - 1: exact in a JavaScript number

// The arguments of one call of a batch (an array), read like a call's own.
class ArrayArgs {
 public:
  explicit ArrayArgs(Napi::Array a) : a_(a) {}
  Napi::Env Env() const { return a_.Env(); }
  size_t Length() const { return a_.Length(); }
  Napi::Value operator[](size_t i) const { return a_.Get(static_cast<uint32_t>(i)); }

 private:
  Napi::Array a_;
};

template <typename Args>
int64_t ArgInt(const Args& info, size_t i, const char* what, double min, double max) {
  if (i >= info.Length() || !info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a number");
  double v = info[i].template As<Napi::Number>().DoubleValue();
  if (!(v >= min && v <= max) || std::floor(v) != v) {
    throw Napi::RangeError::New(info.Env(), std::string(what) + " is out of range");
  }
  return static_cast<int64_t>(v);
}

int ArgFd(const Napi::CallbackInfo& info) { return static_cast<int>(ArgInt(info, 0, "fd", 0, 2147483647.0)); }

template <typename Args>
Napi::TypedArray ArgView(const Args& info, size_t i) {
  if (i >= info.Length() || !info[i].IsTypedArray()) throw Napi::TypeError::New(info.Env(), "buffer must be a Uint8Array");
  Napi::TypedArray view = info[i].template As<Napi::TypedArray>();
  if (view.TypedArrayType() != napi_uint8_array) throw Napi::TypeError::New(info.Env(), "buffer must be a Uint8Array");
  if (view.ArrayBuffer().IsDetached()) throw Napi::TypeError::New(info.Env(), "buffer is detached");
  return view;
}

template <typename Args>
std::string ArgPath(const Args& info, size_t i) {
  Napi::Env env = info.Env();
  std::string path;
  Napi::Value v = i < info.Length() ? info[i] : env.Undefined();
  if (v.IsBuffer()) {
    auto b = v.As<Napi::Buffer<char>>();
    path.assign(b.Data(), b.Length());
  } else if (v.IsString()) {
    path = v.As<Napi::String>().Utf8Value();
  } else {
    throw Napi::TypeError::New(env, "path must be a Buffer or a string");
  }
  if (path.empty() || path.find('\0') != std::string::npos) throw Napi::TypeError::New(env, "path must be non-empty, without NUL bytes");
  return path;
}

// [atimeSec, atimeNsec, mtimeSec, mtimeNsec] at info[i], or false when it is not an array.
template <typename Args>
bool ArgTimes(const Args& info, size_t i, int64_t t[4]) {
  Napi::Env env = info.Env();
  if (info.Length() <= i || !info[i].IsArray()) return false;
  Napi::Array a = info[i].template As<Napi::Array>();
  if (a.Length() != 4) throw Napi::TypeError::New(env, "times must be [atimeSec, atimeNsec, mtimeSec, mtimeNsec]");
  for (uint32_t k = 0; k < 4; k++) {
    Napi::Value v = a[k];
    if (!v.IsNumber()) throw Napi::TypeError::New(env, "times must be numbers");
    t[k] = v.As<Napi::Number>().Int64Value();
  }
  if (t[1] < 0 || t[1] > 999999999 || t[3] < 0 || t[3] > 999999999) throw Napi::RangeError::New(env, "nanoseconds out of range");
  return true;
}

// The calls of a batch: an array of argument arrays.
std::vector<ArrayArgs> ArgCalls(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsArray()) throw Napi::TypeError::New(info.Env(), "calls must be an array of argument arrays");
  Napi::Array calls = info[0].As<Napi::Array>();
  std::vector<ArrayArgs> out;
  for (uint32_t i = 0; i < calls.Length(); i++) {
    Napi::Value c = calls[i];
    if (!c.IsArray()) throw Napi::TypeError::New(info.Env(), "calls must be an array of argument arrays");
    out.emplace_back(c.As<Napi::Array>());
  }
  return out;
}

class PosixAddon : public Napi::Addon<PosixAddon> {
 public:
  PosixAddon(Napi::Env env, Napi::Object exports) : threads_(std::make_unique<IoThreads>(env, ThreadCount())) {
    DefineAddon(exports, {
                             InstanceMethod("allocate", &PosixAddon::Allocate),
                             InstanceMethod("release", &PosixAddon::Release),
                             InstanceMethod("open", &PosixAddon::Open),
                             InstanceMethod("read", &PosixAddon::Read),
                             InstanceMethod("write", &PosixAddon::Write),
                             InstanceMethod("truncate", &PosixAddon::Truncate),
                             InstanceMethod("fsync", &PosixAddon::Fsync),
                             InstanceMethod("extents", &PosixAddon::Extents),
                             InstanceMethod("setAttributes", &PosixAddon::SetAttributes),
                             InstanceMethod("close", &PosixAddon::Close),
                             InstanceMethod("listDirectory", &PosixAddon::ListDirectory),
                             InstanceMethod("readWholeMany", &PosixAddon::ReadWholeMany),
                             InstanceMethod("renameMany", &PosixAddon::RenameMany),
                             InstanceMethod("createWholeMany", &PosixAddon::CreateWholeMany),
                             InstanceMethod("writesUncached", &PosixAddon::WritesUncached),
                             InstanceMethod("stats", &PosixAddon::Stats),
                             InstanceValue("alignment", Napi::Number::New(env, kDirectAlignment)),
                         });
    // The environment is going away (a worker thread ended or was terminated): join the I/O
    // threads, then close what its handles left open.
    env.AddCleanupHook([this] {
      threads_->Stop();
      files_.CloseAll();
    });
  }

 private:
  Napi::Value Submit(Napi::Env env, std::unique_ptr<Job> job) {
    Napi::Promise p = job->Promise();
    threads_->Submit(env, std::move(job));
    return p;
  }

  Napi::Value Allocate(const Napi::CallbackInfo& info) {
    return AllocateAligned(info.Env(), static_cast<size_t>(ArgInt(info, 0, "size", 1, 1024.0 * 1024 * 1024)));
  }

  Napi::Value Release(const Napi::CallbackInfo& info) {
    if (info.Length() < 1 || !info[0].IsArrayBuffer()) throw Napi::TypeError::New(info.Env(), "release takes an ArrayBuffer");
    return Napi::Boolean::New(info.Env(), ReleaseAligned(info[0].As<Napi::ArrayBuffer>()));
  }

  // open(path: Buffer | string, flags, perms, preallocBytes) → {fd, size, allocated, direct}
  Napi::Value Open(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::string path = ArgPath(info, 0);
    int flags = static_cast<int>(ArgInt(info, 1, "flags", 0, 7));
    int perms = static_cast<int>(ArgInt(info, 2, "perms", 0, 07777));
    int64_t prealloc = ArgInt(info, 3, "preallocBytes", 0, kMaxOffset);
    return Submit(env, MakeOpen(env, &files_, std::move(path), flags, perms, prealloc));
  }

  Napi::Value Read(const Napi::CallbackInfo& info) {
    int fd = ArgFd(info);
    Napi::TypedArray view = ArgView(info, 1);
    bool drop_behind = info.Length() < 4 || info[3].ToBoolean().Value();
    return Submit(info.Env(), MakeRead(info.Env(), fd, view, ArgInt(info, 2, "offset", 0, kMaxOffset), drop_behind));
  }

  Napi::Value Write(const Napi::CallbackInfo& info) {
    int fd = ArgFd(info);
    Napi::TypedArray view = ArgView(info, 1);
    int64_t offset = ArgInt(info, 2, "offset", 0, kMaxOffset);
    bool skip_zero = info.Length() > 3 && info[3].ToBoolean().Value();
    bool may_pad = info.Length() > 4 && info[4].ToBoolean().Value();
    bool uncached = info.Length() > 5 && info[5].ToBoolean().Value();
    return Submit(info.Env(), MakeWrite(info.Env(), fd, view, offset, skip_zero, may_pad, uncached));
  }

  Napi::Value Truncate(const Napi::CallbackInfo& info) {
    int fd = ArgFd(info);
    return Submit(info.Env(), MakeTruncate(info.Env(), fd, ArgInt(info, 1, "size", 0, kMaxOffset)));
  }

  Napi::Value Fsync(const Napi::CallbackInfo& info) { return Submit(info.Env(), MakeFsync(info.Env(), ArgFd(info))); }

  Napi::Value Extents(const Napi::CallbackInfo& info) {
    int fd = ArgFd(info);
    return Submit(info.Env(), MakeExtents(info.Env(), fd, ArgInt(info, 1, "size", 0, kMaxOffset)));
  }

  // setAttributes(fd, mode, uid, gid, times | null) with times = [atimeSec, atimeNsec, mtimeSec, mtimeNsec]
  Napi::Value SetAttributes(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int fd = ArgFd(info);
    int64_t mode = ArgInt(info, 1, "mode", -1, 07777);
    int64_t uid = ArgInt(info, 2, "uid", -1, 4294967294.0);
    int64_t gid = ArgInt(info, 3, "gid", -1, 4294967294.0);
    int64_t t[4] = {0, 0, 0, 0};
    bool has_times = ArgTimes(info, 4, t);
    return Submit(env, MakeSetAttributes(env, fd, mode, uid, gid, has_times, t[0], t[1], t[2], t[3]));
  }

  // close(fd, dropCache, logicalEnd, paddedEnd)
  Napi::Value Close(const Napi::CallbackInfo& info) {
    int fd = ArgFd(info);
    bool drop_cache = info.Length() > 1 && info[1].ToBoolean().Value();
    int64_t logical_end = ArgInt(info, 2, "logicalEnd", 0, kMaxOffset);
    int64_t padded_end = ArgInt(info, 3, "paddedEnd", 0, kMaxOffset);
    return Submit(info.Env(), MakeClose(info.Env(), &files_, fd, drop_cache, logical_end, padded_end));
  }

  // A batch goes to the I/O threads as one job: one thread woken for all of its calls.
  Napi::Value SubmitBatch(Napi::Env env, std::vector<std::unique_ptr<Job>> jobs) {
    Napi::Array promises = Napi::Array::New(env, jobs.size());
    for (uint32_t i = 0; i < jobs.size(); i++) promises.Set(i, jobs[i]->Promise());
    if (!jobs.empty()) threads_->Submit(env, MakeBatch(env, std::move(jobs)));
    return promises;
  }

  // listDirectory(path, noFollow) → a promise of { names, meta } (MakeListDirectory)
  Napi::Value ListDirectory(const Napi::CallbackInfo& info) {
    bool no_follow = info.Length() > 1 && info[1].ToBoolean().Value();
    return Submit(info.Env(), MakeListDirectory(info.Env(), ArgPath(info, 0), no_follow));
  }

  // writesUncached(dir) → a promise of 1 when buffered writes to new files there go uncached, else 0
  Napi::Value WritesUncached(const Napi::CallbackInfo& info) { return Submit(info.Env(), MakeUncachedProbe(info.Env(), ArgPath(info, 0))); }

  // readWholeMany([[path, buffer], ...]) → a promise of the bytes read for each
  Napi::Value ReadWholeMany(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::vector<std::unique_ptr<Job>> jobs;
    for (const ArrayArgs& call : ArgCalls(info)) jobs.push_back(MakeReadWhole(env, ArgPath(call, 0), ArgView(call, 1)));
    return SubmitBatch(env, std::move(jobs));
  }

  // renameMany([[from, to], ...]) → a promise for each
  Napi::Value RenameMany(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::vector<std::unique_ptr<Job>> jobs;
    for (const ArrayArgs& call : ArgCalls(info)) jobs.push_back(MakeRename(env, ArgPath(call, 0), ArgPath(call, 1)));
    return SubmitBatch(env, std::move(jobs));
  }

  // createWholeMany([[path, data, perms, size, skipZero, mode, uid, gid, times | null, final?], ...]) → a promise for each
  Napi::Value CreateWholeMany(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::vector<std::unique_ptr<Job>> jobs;
    for (const ArrayArgs& call : ArgCalls(info)) {
      std::string path = ArgPath(call, 0);
      Napi::TypedArray view = ArgView(call, 1);
      int perms = static_cast<int>(ArgInt(call, 2, "perms", 0, 07777));
      int64_t size = ArgInt(call, 3, "size", 0, kMaxOffset);
      bool skip_zero = call.Length() > 4 && call[4].ToBoolean().Value();
      int64_t mode = ArgInt(call, 5, "mode", -1, 07777);
      int64_t uid = ArgInt(call, 6, "uid", -1, 4294967294.0);
      int64_t gid = ArgInt(call, 7, "gid", -1, 4294967294.0);
      int64_t t[4] = {0, 0, 0, 0};
      bool has_times = ArgTimes(call, 8, t);
      // A final name (optional): the file is put there whole, path being the temporary name it may use.
      bool placed = call.Length() > 9 && !call[9].IsNull() && !call[9].IsUndefined();
      std::string final_path = placed ? ArgPath(call, 9) : std::string();
      jobs.push_back(MakeCreateWhole(env, std::move(path), view, perms, size, skip_zero, mode, uid, gid, has_times, t[0], t[1], t[2], t[3], std::move(final_path)));
    }
    return SubmitBatch(env, std::move(jobs));
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("alignedBuffers", static_cast<double>(LiveAlignedBlocks()));
    o.Set("alignedBytes", static_cast<double>(LiveAlignedBytes()));
    o.Set("openFiles", static_cast<double>(OpenFileCount()));
    o.Set("unnamedPlacements", static_cast<double>(UnnamedPlacementCount()));
    o.Set("inFlight", static_cast<double>(threads_->InFlight()));
    return o;
  }

  FileTable files_;
  std::unique_ptr<IoThreads> threads_;
};

}  // namespace
}  // namespace escp

using EscpPosixAddon = escp::PosixAddon;
NODE_API_ADDON(EscpPosixAddon)
