// The raw module: argument checks, then reads and writes queue on this environment's ring and
// return promises; JavaScript asks for a submit once per turn of the event loop. Types for it
// are in src/binding.ts. Built without io_uring headers, it only reports why it cannot run.
#include <napi.h>

#include <cmath>
#include <string>

#include "uring-sys.h"
#ifdef ESCP_HAVE_URING
#include "aligned-memory.h"
#include "data-ops.h"
#include "ring.h"
#include "syscall-error.h"
#endif

namespace escp {
namespace {

#ifdef ESCP_HAVE_URING

// fio's and liburing's usual depth: enough to keep an NVMe device busy from one thread, and
// each worker thread of a transfer has its own ring.
constexpr unsigned kDefaultDepth = 64;
constexpr double kMaxDepth = 4096;
constexpr double kMaxOffset = 9007199254740991.0;  // 2^53 - 1: exact in a JavaScript number
// One entry moves at most 1 GiB (the kernel caps a single read or write just under 2 GiB).
constexpr double kMaxTrip = 1024.0 * 1024 * 1024;

int64_t ArgInt(const Napi::CallbackInfo& info, size_t i, const char* what, double min, double max) {
  if (i >= info.Length() || !info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a number");
  double v = info[i].As<Napi::Number>().DoubleValue();
  if (!(v >= min && v <= max) || std::floor(v) != v) {
    throw Napi::RangeError::New(info.Env(), std::string(what) + " is out of range");
  }
  return static_cast<int64_t>(v);
}

int ArgFd(const Napi::CallbackInfo& info) { return static_cast<int>(ArgInt(info, 0, "fd", 0, 2147483647.0)); }

Napi::TypedArray ArgView(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || !info[i].IsTypedArray()) throw Napi::TypeError::New(info.Env(), "buffer must be a Uint8Array");
  Napi::TypedArray view = info[i].As<Napi::TypedArray>();
  if (view.TypedArrayType() != napi_uint8_array) throw Napi::TypeError::New(info.Env(), "buffer must be a Uint8Array");
  if (view.ArrayBuffer().IsDetached()) throw Napi::TypeError::New(info.Env(), "buffer is detached");
  return view;
}

class UringAddon : public Napi::Addon<UringAddon> {
 public:
  UringAddon(Napi::Env env, Napi::Object exports) {
    DefineAddon(exports, {
                             InstanceMethod("probe", &UringAddon::Probe),
                             InstanceMethod("configure", &UringAddon::Configure),
                             InstanceMethod("start", &UringAddon::Start),
                             InstanceMethod("allocate", &UringAddon::Allocate),
                             InstanceMethod("release", &UringAddon::Release),
                             InstanceMethod("attach", &UringAddon::Attach),
                             InstanceMethod("detach", &UringAddon::Detach),
                             InstanceMethod("read", &UringAddon::Read),
                             InstanceMethod("write", &UringAddon::Write),
                             InstanceMethod("submit", &UringAddon::Submit),
                             InstanceMethod("stats", &UringAddon::Stats),
                             InstanceValue("alignment", Napi::Number::New(env, kDirectAlignment)),
                         });
  }

 private:
  // Created at first use; the environment's teardown closes it (and clears ring_).
  Ring& ring(Napi::Env env) {
    if (ring_ == nullptr) ring_ = Ring::Create(env, depth_, max_trip_, &ring_);
    return *ring_;
  }

  // probe() → {ok: true} | {ok: false, errno, syscall} | {ok: false, missing}
  Napi::Value Probe(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* syscall = "";
    const char* missing = "";
    int r = ProbeUring(&syscall, &missing);
    Napi::Object o = Napi::Object::New(env);
    o.Set("ok", r == 0);
    if (r > 0) {
      o.Set("errno", -r);
      o.Set("syscall", syscall);
    } else if (r < 0) {
      o.Set("missing", missing);
    }
    return o;
  }

  // configure(queueDepth, maxTripBytes?) → the depth of this environment's ring: the one asked
  // for, unless the ring already exists. maxTripBytes caps what one entry reads or writes, so
  // that tests can make the kernel complete an I/O in parts.
  Napi::Value Configure(const Napi::CallbackInfo& info) {
    unsigned depth = static_cast<unsigned>(ArgInt(info, 0, "queueDepth", 1, kMaxDepth));
    size_t max_trip = info.Length() > 1 && !info[1].IsUndefined() ? static_cast<size_t>(ArgInt(info, 1, "maxTripBytes", kDirectAlignment, kMaxTrip)) : max_trip_;
    if (max_trip % kDirectAlignment != 0) throw Napi::RangeError::New(info.Env(), "maxTripBytes must be a multiple of 4096");
    if (ring_ == nullptr) {
      depth_ = depth;
      max_trip_ = max_trip;
    }
    return Napi::Number::New(info.Env(), ring_ != nullptr ? ring_->depth() : depth_);
  }

  // start(): sets up this environment's ring now (it is otherwise made at first use).
  Napi::Value Start(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), ring(info.Env()).depth());
  }

  Napi::Value Allocate(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    size_t size = static_cast<size_t>(ArgInt(info, 0, "size", 1, 1024.0 * 1024 * 1024));
    return AllocateAligned(env, size, ring(env).buffers());
  }

  Napi::Value Release(const Napi::CallbackInfo& info) {
    if (info.Length() < 1 || !info[0].IsArrayBuffer()) throw Napi::TypeError::New(info.Env(), "release takes an ArrayBuffer");
    return Napi::Boolean::New(info.Env(), ReleaseAligned(info[0].As<Napi::ArrayBuffer>()));
  }

  // attach(fd, direct, keepCache): the ring will do I/O on fd (registered as a fixed file when
  // there is room); keepCache: buffered reads leave the pages they pass in the cache.
  Napi::Value Attach(const Napi::CallbackInfo& info) {
    int fd = ArgFd(info);
    bool direct = info.Length() > 1 && info[1].ToBoolean().Value();
    bool keep_cache = info.Length() > 2 && info[2].ToBoolean().Value();
    ring(info.Env()).Attach(fd, direct, keep_cache);
    return info.Env().Undefined();
  }

  // detach(fd), before fd is closed.
  Napi::Value Detach(const Napi::CallbackInfo& info) {
    int fd = ArgFd(info);
    if (ring_ != nullptr) ring_->Detach(fd);
    return info.Env().Undefined();
  }

  std::shared_ptr<RingFile> ArgFile(const Napi::CallbackInfo& info) {
    int fd = ArgFd(info);
    std::shared_ptr<RingFile> file = ring_ != nullptr ? ring_->Find(fd) : nullptr;
    if (!file) throw Napi::TypeError::New(info.Env(), "fd " + std::to_string(fd) + " is not attached to the ring");
    return file;
  }

  static Napi::Value Resolved(Napi::Env env, double value) {
    auto done = Napi::Promise::Deferred::New(env);
    done.Resolve(Napi::Number::New(env, value));
    return done.Promise();
  }

  Napi::Value Queue(Napi::Env env, TransferOp* op) {
    Napi::Promise promise = op->Promise();
    if (op->HasFailed()) {
      op->Settle(env);
      delete op;
    } else {
      ring_->Queue(op);
    }
    return promise;
  }

  // read(fd, buf, offset) → bytes read
  Napi::Value Read(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::shared_ptr<RingFile> file = ArgFile(info);
    Napi::TypedArray view = ArgView(info, 1);
    int64_t offset = ArgInt(info, 2, "offset", 0, kMaxOffset);
    if (view.ByteLength() == 0) return Resolved(env, 0);
    return Queue(env, MakeRead(env, *ring_, std::move(file), view, offset));
  }

  // write(fd, data, offset, skipZero, mayPad, uncached) → padded end of file, or 0
  Napi::Value Write(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::shared_ptr<RingFile> file = ArgFile(info);
    Napi::TypedArray view = ArgView(info, 1);
    int64_t offset = ArgInt(info, 2, "offset", 0, kMaxOffset);
    bool skip_zero = info.Length() > 3 && info[3].ToBoolean().Value();
    bool may_pad = info.Length() > 4 && info[4].ToBoolean().Value();
    bool uncached = info.Length() > 5 && info[5].ToBoolean().Value();
    auto* data = static_cast<const uint8_t*>(view.ArrayBuffer().Data()) + view.ByteOffset();
    // Nothing to write, or a hole.
    if (view.ByteLength() == 0 || (skip_zero && IsAllZero(data, view.ByteLength()))) return Resolved(env, 0);
    return Queue(env, MakeWrite(env, *ring_, std::move(file), view, offset, may_pad, uncached));
  }

  // submit() → entries the kernel took
  Napi::Value Submit(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), ring_ != nullptr ? ring_->Submit() : 0);
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("alignedBuffers", static_cast<double>(LiveAlignedBlocks()));
    o.Set("alignedBytes", static_cast<double>(LiveAlignedBytes()));
    o.Set("queueDepth", ring_ != nullptr ? ring_->depth() : depth_);
    o.Set("ring", ring_ != nullptr);
    o.Set("inFlight", static_cast<double>(ring_ != nullptr ? ring_->in_flight() : 0));
    o.Set("registeredBuffers", static_cast<double>(ring_ != nullptr && ring_->buffers() ? ring_->buffers()->Used() : 0));
    o.Set("fixedFiles", static_cast<double>(ring_ != nullptr ? ring_->fixed_files() : 0));
    o.Set("enterCalls", static_cast<double>(ring_ != nullptr ? ring_->enter_calls() : 0));
    o.Set("entriesSubmitted", static_cast<double>(ring_ != nullptr ? ring_->entries_submitted() : 0));
    o.Set("fixedTrips", static_cast<double>(ring_ != nullptr ? ring_->fixed_trips() : 0));
    o.Set("peakInKernel", static_cast<double>(ring_ != nullptr ? ring_->peak_in_kernel() : 0));
    return o;
  }

  unsigned depth_ = kDefaultDepth;
  size_t max_trip_ = static_cast<size_t>(kMaxTrip);
  Ring* ring_ = nullptr;
};

#else

// Built where <linux/io_uring.h> was missing or older than Linux 5.19.
class UringAddon : public Napi::Addon<UringAddon> {
 public:
  UringAddon(Napi::Env, Napi::Object exports) { DefineAddon(exports, {InstanceMethod("probe", &UringAddon::Probe)}); }

 private:
  Napi::Value Probe(const Napi::CallbackInfo& info) {
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("ok", false);
    o.Set("reason",
          "it was built without io_uring: <linux/io_uring.h> from Linux 5.19 or later was missing; install the kernel "
          "headers (linux-libc-dev) and run 'npm run build'");
    return o;
  }
};

#endif

}  // namespace
}  // namespace escp

using EscpUringAddon = escp::UringAddon;
NODE_API_ADDON(EscpUringAddon)
