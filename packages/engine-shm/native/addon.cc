// The raw module over the C library (../src/escp_shm.c): regions are numbered handles of this
// JavaScript environment, each with its own mapping; calls that wait (open, claim, attach,
// take, read, write, waitDone) run on wait threads and return promises, the others return at
// once. Types for it are in src/binding.ts.
#include <napi.h>

#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <string>

#include "escp_shm.h"
#include "wait-threads.h"

namespace escp {
namespace {

// Waits hold a thread each; more than this many at once is a program waiting on itself.
constexpr size_t kMaxWaitThreads = 64;
constexpr double kMaxU53 = 9007199254740991.0;

struct Region {
  explicit Region(escp_shm* s) : shm(s) {}
  ~Region() { escp_shm_close(shm); }
  Region(const Region&) = delete;
  Region& operator=(const Region&) = delete;
  escp_shm* shm;
};
using RegionRef = std::shared_ptr<Region>;

const char* CodeName(int code) {
  switch (code) {
    case ESCP_SHM_EABORTED: return "ESHMABORTED";
    case ESCP_SHM_EBADREGION: return "ESHMBADREGION";
    case ESCP_SHM_ECANCELED: return "ECANCELED";
    default: return nullptr;
  }
}

// An Error as Node's fs makes them: errno (negative) and syscall; our own codes by name.
Napi::Error ShmError(Napi::Env env, int code, const char* syscall, const std::string& detail = "") {
  std::string message = detail.empty() ? escp_shm_strerror(code) : detail;
  Napi::Error e = Napi::Error::New(env, std::string(syscall) + ": " + message);
  const char* name = CodeName(code);
  if (name) e.Set("code", Napi::String::New(env, name));
  else e.Set("errno", Napi::Number::New(env, code));
  e.Set("syscall", Napi::String::New(env, syscall));
  return e;
}

std::string AbortMessage(escp_shm* shm, int stream) {
  escp_shm_stream_info info;
  if (escp_shm_stream_state(shm, stream, &info) != 0) return "the stream was aborted";
  return info.error;
}

double ArgNumber(const Napi::CallbackInfo& info, size_t i, const char* what, double min, double max) {
  if (i >= info.Length() || !info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a number");
  double v = info[i].As<Napi::Number>().DoubleValue();
  if (!(v >= min && v <= max) || std::floor(v) != v) throw Napi::RangeError::New(info.Env(), std::string(what) + " is out of range");
  return v;
}

std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (i >= info.Length() || !info[i].IsString()) throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a string");
  std::string s = info[i].As<Napi::String>().Utf8Value();
  if (s.find('\0') != std::string::npos) throw Napi::TypeError::New(info.Env(), std::string(what) + " must not hold NUL bytes");
  return s;
}

Napi::Uint8Array ArgView(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || !info[i].IsTypedArray()) throw Napi::TypeError::New(info.Env(), "buffer must be a Uint8Array");
  Napi::TypedArray view = info[i].As<Napi::TypedArray>();
  if (view.TypedArrayType() != napi_uint8_array) throw Napi::TypeError::New(info.Env(), "buffer must be a Uint8Array");
  if (view.ArrayBuffer().IsDetached()) throw Napi::TypeError::New(info.Env(), "buffer is detached");
  return view.As<Napi::Uint8Array>();
}

int Timeout(const Napi::CallbackInfo& info, size_t i) {
  return static_cast<int>(ArgNumber(info, i, "timeoutMs", -1, 2147483647.0));
}

// A job whose outcome is a code from the C library and, on success, a value.
class RegionJob : public Job {
 public:
  RegionJob(Napi::Env env, RegionRef region, const char* syscall) : Job(env), region_(std::move(region)), syscall_(syscall) {}
  void Complete(Napi::Env env) override {
    if (code_ < 0) {
      deferred_.Reject(ShmError(env, code_, syscall_, code_ == ESCP_SHM_EABORTED ? AbortMessage(region_->shm, stream_) : "").Value());
    } else {
      deferred_.Resolve(Result(env));
    }
  }

 protected:
  virtual Napi::Value Result(Napi::Env env) = 0;
  RegionRef region_;
  const char* syscall_;
  int code_ = 0;
  int stream_ = -1;
};

class ClaimJob : public RegionJob {
 public:
  ClaimJob(Napi::Env env, RegionRef r, int stream, int timeout) : RegionJob(env, std::move(r), "escp_shm_claim"), timeout_(timeout) { stream_ = stream; }
  void Execute() override { code_ = escp_shm_claim(region_->shm, stream_, timeout_, &slot_); }
  Napi::Value Result(Napi::Env env) override { return Napi::Number::New(env, slot_); }

 private:
  int timeout_;
  uint32_t slot_ = 0;
};

class AttachJob : public RegionJob {
 public:
  AttachJob(Napi::Env env, RegionRef r, std::string name, int timeout) : RegionJob(env, std::move(r), "escp_shm_stream_attach"), name_(std::move(name)), timeout_(timeout) {}
  void Execute() override { code_ = escp_shm_stream_attach(region_->shm, name_.c_str(), timeout_, &stream_); }
  Napi::Value Result(Napi::Env env) override { return Napi::Number::New(env, stream_); }

 private:
  std::string name_;
  int timeout_;
};

class WaitDoneJob : public RegionJob {
 public:
  WaitDoneJob(Napi::Env env, RegionRef r, int stream, int timeout) : RegionJob(env, std::move(r), "escp_shm_stream_wait_done"), timeout_(timeout) { stream_ = stream; }
  void Execute() override { code_ = escp_shm_stream_wait_done(region_->shm, stream_, timeout_); }
  Napi::Value Result(Napi::Env env) override { return env.Undefined(); }

 private:
  int timeout_;
};

// take(): the block stays in its slot; JavaScript reads it there and releases it.
class TakeJob : public RegionJob {
 public:
  TakeJob(Napi::Env env, RegionRef r, int stream, uint64_t offset, int timeout) : RegionJob(env, std::move(r), "escp_shm_take"), offset_(offset), timeout_(timeout) { stream_ = stream; }
  void Execute() override { code_ = escp_shm_take(region_->shm, stream_, offset_, timeout_, &block_); }
  Napi::Value Result(Napi::Env env) override {
    if (code_ == ESCP_SHM_EOF) return env.Null();
    Napi::Object o = Napi::Object::New(env);
    o.Set("slot", static_cast<double>(block_.slot));
    o.Set("offset", static_cast<double>(block_.offset));
    o.Set("length", static_cast<double>(block_.length));
    return o;
  }

 private:
  uint64_t offset_;
  int timeout_;
  escp_shm_block block_{};
};

// The engine's read: take the block at `offset`, copy it into a buffer of the transfer's pool,
// release the slot. The copy is one memcpy on this thread.
class ReadIntoJob : public RegionJob {
 public:
  ReadIntoJob(Napi::Env env, RegionRef r, int stream, uint64_t offset, int timeout, Napi::Uint8Array view)
      : RegionJob(env, std::move(r), "escp_shm_take"), offset_(offset), timeout_(timeout), dst_(view.Data()), capacity_(view.ByteLength()), keep_(Napi::Persistent(static_cast<Napi::Object>(view))) {
    stream_ = stream;
  }
  void Execute() override {
    escp_shm_block b;
    code_ = escp_shm_take(region_->shm, stream_, offset_, timeout_, &b);
    if (code_ != 0) return;
    if (b.length > capacity_) {
      // The transfer's blocks are smaller than the region's: its data cannot be delivered.
      escp_shm_release(region_->shm, &b);
      escp_shm_stream_abort(region_->shm, stream_, "the region's block is larger than the transfer's block");
      code_ = -EINVAL;
      return;
    }
    std::memcpy(dst_, b.data, b.length);
    length_ = b.length;
    code_ = escp_shm_release(region_->shm, &b);
  }
  Napi::Value Result(Napi::Env env) override {
    keep_.Reset();
    return Napi::Number::New(env, code_ == ESCP_SHM_EOF ? 0 : static_cast<double>(length_));
  }
  void Abandon() override { keep_.SuppressDestruct(); }

 private:
  uint64_t offset_;
  int timeout_;
  uint8_t* dst_;
  size_t capacity_;
  uint64_t length_ = 0;
  Napi::ObjectReference keep_;
};

// The engine's write: claim a slot (waiting while the consumer is behind), copy, commit.
class WriteFromJob : public RegionJob {
 public:
  WriteFromJob(Napi::Env env, RegionRef r, int stream, uint64_t offset, int timeout, Napi::Uint8Array view, bool end_when_complete)
      : RegionJob(env, std::move(r), "escp_shm_claim"),
        offset_(offset),
        timeout_(timeout),
        src_(view.Data()),
        length_(view.ByteLength()),
        end_when_complete_(end_when_complete),
        keep_(Napi::Persistent(static_cast<Napi::Object>(view))) {
    stream_ = stream;
  }
  void Execute() override {
    if (length_ == 0 || length_ > escp_shm_block_size(region_->shm)) {
      code_ = -EINVAL;
      return;
    }
    uint32_t slot;
    // Blocks of a file arrive out of order, from several streams: claim for the offset, so
    // later blocks cannot fill the slots that an in-order consumer's next block needs.
    code_ = escp_shm_claim_at(region_->shm, stream_, offset_, timeout_, &slot);
    if (code_ != 0) return;
    std::memcpy(escp_shm_slot_data(region_->shm, slot), src_, length_);
    code_ = escp_shm_commit(region_->shm, stream_, slot, offset_, length_);
    if (code_ != 0) {
      syscall_ = "escp_shm_commit";
      escp_shm_unclaim(region_->shm, stream_, slot);
      return;
    }
    if (!end_when_complete_) return;
    // The write that completes a stream of known size ends it; writers on other threads may
    // race here, and only one end succeeds.
    escp_shm_stream_info s;
    if (escp_shm_stream_state(region_->shm, stream_, &s) == 0 && s.state == ESCP_SHM_STREAM_OPEN && s.committed_bytes == s.size) {
      escp_shm_stream_end(region_->shm, stream_);
    }
  }
  Napi::Value Result(Napi::Env env) override {
    keep_.Reset();
    return env.Undefined();
  }
  void Abandon() override { keep_.SuppressDestruct(); }

 private:
  uint64_t offset_;
  int timeout_;
  const uint8_t* src_;
  size_t length_;
  bool end_when_complete_;
  Napi::ObjectReference keep_;
};

class ShmAddon;

class OpenJob : public Job {
 public:
  OpenJob(Napi::Env env, ShmAddon* addon, std::string name, bool create, uint64_t block_size, uint32_t slots, uint32_t streams)
      : Job(env), addon_(addon), name_(std::move(name)), create_(create), block_size_(block_size), slots_(slots), streams_(streams) {}
  void Execute() override {
    code_ = create_ ? escp_shm_create(name_.c_str(), block_size_, slots_, streams_, &shm_) : escp_shm_open(name_.c_str(), &shm_);
  }
  void Complete(Napi::Env env) override;
  void Abandon() override {
    if (code_ == 0) escp_shm_close(shm_);
  }

 private:
  ShmAddon* addon_;
  std::string name_;
  bool create_;
  uint64_t block_size_;
  uint32_t slots_, streams_;
  escp_shm* shm_ = nullptr;
  int code_ = 0;
};

class ShmAddon : public Napi::Addon<ShmAddon> {
 public:
  ShmAddon(Napi::Env env, Napi::Object exports) : threads_(std::make_unique<WaitThreads>(env, kMaxWaitThreads)) {
    DefineAddon(exports, {
                             InstanceMethod("open", &ShmAddon::Open),
                             InstanceMethod("close", &ShmAddon::Close),
                             InstanceMethod("slots", &ShmAddon::Slots),
                             InstanceMethod("info", &ShmAddon::Info),
                             InstanceMethod("begin", &ShmAddon::Begin),
                             InstanceMethod("claim", &ShmAddon::Claim),
                             InstanceMethod("commit", &ShmAddon::Commit),
                             InstanceMethod("unclaim", &ShmAddon::Unclaim),
                             InstanceMethod("end", &ShmAddon::End),
                             InstanceMethod("abort", &ShmAddon::Abort),
                             InstanceMethod("waitDone", &ShmAddon::WaitDone),
                             InstanceMethod("attach", &ShmAddon::Attach),
                             InstanceMethod("state", &ShmAddon::State),
                             InstanceMethod("find", &ShmAddon::Find),
                             InstanceMethod("take", &ShmAddon::Take),
                             InstanceMethod("release", &ShmAddon::Release),
                             InstanceMethod("readInto", &ShmAddon::ReadInto),
                             InstanceMethod("writeFrom", &ShmAddon::WriteFrom),
                             InstanceMethod("stats", &ShmAddon::Stats),
                         });
    // The environment is going away: wake every wait of its regions, then join the threads.
    env.AddCleanupHook([this] {
      for (auto& kv : regions_) escp_shm_cancel(kv.second->shm);
      threads_->Stop();
      regions_.clear();
    });
  }

  Napi::Object Register(Napi::Env env, escp_shm* shm) {
    uint32_t id = next_id_++;
    regions_[id] = std::make_shared<Region>(shm);
    Napi::Object o = Napi::Object::New(env);
    o.Set("id", static_cast<double>(id));
    o.Set("blockSizeBytes", static_cast<double>(escp_shm_block_size(shm)));
    o.Set("slotCount", static_cast<double>(escp_shm_slot_count(shm)));
    o.Set("streamCount", static_cast<double>(escp_shm_stream_count(shm)));
    return o;
  }

 private:
  Napi::Value Submit(Napi::Env env, std::unique_ptr<Job> job) {
    Napi::Promise p = job->Promise();
    threads_->Submit(env, std::move(job));
    return p;
  }

  RegionRef RegionOf(const Napi::CallbackInfo& info) {
    uint32_t id = static_cast<uint32_t>(ArgNumber(info, 0, "region", 0, 4294967295.0));
    auto it = regions_.find(id);
    if (it == regions_.end()) throw Napi::Error::New(info.Env(), "the region is closed");
    return it->second;
  }

  int StreamArg(const Napi::CallbackInfo& info, const RegionRef& r) {
    return static_cast<int>(ArgNumber(info, 1, "stream", 0, escp_shm_stream_count(r->shm) - 1));
  }

  void Check(Napi::Env env, int code, const char* syscall, const RegionRef& r, int stream) {
    if (code >= 0) return;
    throw ShmError(env, code, syscall, code == ESCP_SHM_EABORTED ? AbortMessage(r->shm, stream) : "");
  }

  // open(name, create, blockSizeBytes, slotCount, streamCount) → {id, blockSizeBytes, slotCount, streamCount}
  Napi::Value Open(const Napi::CallbackInfo& info) {
    std::string name = ArgString(info, 0, "name");
    bool create = info.Length() > 1 && info[1].ToBoolean().Value();
    uint64_t bs = create ? static_cast<uint64_t>(ArgNumber(info, 2, "blockSizeBytes", 0, kMaxU53)) : 0;
    uint32_t slots = create ? static_cast<uint32_t>(ArgNumber(info, 3, "slotCount", 0, 4294967295.0)) : 0;
    uint32_t streams = create ? static_cast<uint32_t>(ArgNumber(info, 4, "streamCount", 0, 4294967295.0)) : 0;
    return Submit(info.Env(), std::make_unique<OpenJob>(info.Env(), this, std::move(name), create, bs, slots, streams));
  }

  // close(region, remove): waits of this handle end with ECANCELED; the mapping goes with the
  // last job or slot view that uses it.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    RegionRef r = RegionOf(info);
    bool remove = info.Length() > 1 && info[1].ToBoolean().Value();
    regions_.erase(static_cast<uint32_t>(info[0].As<Napi::Number>().Uint32Value()));
    escp_shm_cancel(r->shm);
    if (remove) escp_shm_remove(r->shm);
    return info.Env().Undefined();
  }

  // The slot area of this handle's mapping, as one external ArrayBuffer (V8 allows one
  // external ArrayBuffer per address, so slots are views into it).
  Napi::Value Slots(const Napi::CallbackInfo& info) {
    RegionRef r = RegionOf(info);
    size_t bytes = static_cast<size_t>(escp_shm_block_size(r->shm)) * escp_shm_slot_count(r->shm);
    auto* keep = new RegionRef(r);
    return Napi::ArrayBuffer::New(info.Env(), escp_shm_slots_base(r->shm), bytes, [](Napi::Env, void*, RegionRef* k) { delete k; }, keep);
  }

  Napi::Value Info(const Napi::CallbackInfo& info) {
    RegionRef r = RegionOf(info);
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("slotsInUse", static_cast<double>(escp_shm_slots_in_use(r->shm)));
    return o;
  }

  // begin(region, name, sizeBytes | -1) → stream
  Napi::Value Begin(const Napi::CallbackInfo& info) {
    RegionRef r = RegionOf(info);
    std::string name = ArgString(info, 1, "name");
    double size = ArgNumber(info, 2, "sizeBytes", -1, kMaxU53);
    int stream = -1;
    Check(info.Env(), escp_shm_stream_begin(r->shm, name.c_str(), size < 0 ? ESCP_SHM_SIZE_UNKNOWN : static_cast<uint64_t>(size), &stream), "escp_shm_stream_begin", r, 0);
    return Napi::Number::New(info.Env(), stream);
  }

  Napi::Value Claim(const Napi::CallbackInfo& info) {
    RegionRef r = RegionOf(info);
    int stream = StreamArg(info, r);
    return Submit(info.Env(), std::make_unique<ClaimJob>(info.Env(), r, stream, Timeout(info, 2)));
  }

  // commit(region, stream, slot, offset, length)
  Napi::Value Commit(const Napi::CallbackInfo& info) {
    RegionRef r = RegionOf(info);
    int stream = StreamArg(info, r);
    uint32_t slot = static_cast<uint32_t>(ArgNumber(info, 2, "slot", 0, 4294967295.0));
    uint64_t offset = static_cast<uint64_t>(ArgNumber(info, 3, "offset", 0, kMaxU53));
    uint64_t length = static_cast<uint64_t>(ArgNumber(info, 4, "length", 0, kMaxU53));
    Check(info.Env(), escp_shm_commit(r->shm, stream, slot, offset, length), "escp_shm_commit", r, stream);
    return info.Env().Undefined();
  }

  Napi::Value Unclaim(const Napi::CallbackInfo& info) {
    RegionRef r = RegionOf(info);
    int stream = StreamArg(info, r);
    uint32_t slot = static_cast<uint32_t>(ArgNumber(info, 2, "slot", 0, 4294967295.0));
    Check(info.Env(), escp_shm_unclaim(r->shm, stream, slot), "escp_shm_unclaim", r, stream);
    return info.Env().Undefined();
  }

  Napi::Value End(const Napi::CallbackInfo& info) {
    RegionRef r = RegionOf(info);
    int stream = StreamArg(info, r);
    Check(info.Env(), escp_shm_stream_end(r->shm, stream), "escp_shm_stream_end", r, stream);
    return info.Env().Undefined();
  }

  Napi::Value Abort(const Napi::CallbackInfo& info) {
    RegionRef r = RegionOf(info);
    int stream = StreamArg(info, r);
    std::string message = ArgString(info, 2, "message");
    Check(info.Env(), escp_shm_stream_abort(r->shm, stream, message.c_str()), "escp_shm_stream_abort", r, stream);
    return info.Env().Undefined();
  }

  Napi::Value WaitDone(const Napi::CallbackInfo& info) {
    RegionRef r = RegionOf(info);
    int stream = StreamArg(info, r);
    return Submit(info.Env(), std::make_unique<WaitDoneJob>(info.Env(), r, stream, Timeout(info, 2)));
  }

  Napi::Value Attach(const Napi::CallbackInfo& info) {
    RegionRef r = RegionOf(info);
    std::string name = ArgString(info, 1, "name");
    return Submit(info.Env(), std::make_unique<AttachJob>(info.Env(), r, std::move(name), Timeout(info, 2)));
  }

  Napi::Value State(const Napi::CallbackInfo& info) {
    RegionRef r = RegionOf(info);
    int stream = StreamArg(info, r);
    escp_shm_stream_info s;
    Check(info.Env(), escp_shm_stream_state(r->shm, stream, &s), "escp_shm_stream_state", r, stream);
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("state", s.state);
    o.Set("producerPid", static_cast<double>(s.producer_pid));
    o.Set("consumerPid", static_cast<double>(s.consumer_pid));
    o.Set("sizeBytes", s.size == ESCP_SHM_SIZE_UNKNOWN ? -1.0 : static_cast<double>(s.size));
    o.Set("committedBytes", static_cast<double>(s.committed_bytes));
    o.Set("releasedBytes", static_cast<double>(s.released_bytes));
    o.Set("name", s.name);
    o.Set("error", s.error);
    return o;
  }

  // find(region, name) → stream, or -1 when no stream of that name is open, ended or aborted
  Napi::Value Find(const Napi::CallbackInfo& info) {
    RegionRef r = RegionOf(info);
    std::string name = ArgString(info, 1, "name");
    int stream = -1;
    int code = escp_shm_stream_find(r->shm, name.c_str(), &stream);
    if (code == -ENOENT) return Napi::Number::New(info.Env(), -1);
    Check(info.Env(), code, "escp_shm_stream_find", r, 0);
    return Napi::Number::New(info.Env(), stream);
  }

  // take(region, stream, offset, timeoutMs) → {slot, offset, length} | null at the end
  Napi::Value Take(const Napi::CallbackInfo& info) {
    RegionRef r = RegionOf(info);
    int stream = StreamArg(info, r);
    uint64_t offset = static_cast<uint64_t>(ArgNumber(info, 2, "offset", 0, kMaxU53));
    return Submit(info.Env(), std::make_unique<TakeJob>(info.Env(), r, stream, offset, Timeout(info, 3)));
  }

  // release(region, stream, slot)
  Napi::Value Release(const Napi::CallbackInfo& info) {
    RegionRef r = RegionOf(info);
    int stream = StreamArg(info, r);
    escp_shm_block b{};
    b.stream = stream;
    b.slot = static_cast<uint32_t>(ArgNumber(info, 2, "slot", 0, 4294967295.0));
    Check(info.Env(), escp_shm_release(r->shm, &b), "escp_shm_release", r, stream);
    return info.Env().Undefined();
  }

  // readInto(region, stream, offset, timeoutMs, buffer) → bytes (0 past the end)
  Napi::Value ReadInto(const Napi::CallbackInfo& info) {
    RegionRef r = RegionOf(info);
    int stream = StreamArg(info, r);
    uint64_t offset = static_cast<uint64_t>(ArgNumber(info, 2, "offset", 0, kMaxU53));
    int timeout = Timeout(info, 3);
    return Submit(info.Env(), std::make_unique<ReadIntoJob>(info.Env(), r, stream, offset, timeout, ArgView(info, 4)));
  }

  // writeFrom(region, stream, offset, timeoutMs, buffer, endWhenComplete)
  Napi::Value WriteFrom(const Napi::CallbackInfo& info) {
    RegionRef r = RegionOf(info);
    int stream = StreamArg(info, r);
    uint64_t offset = static_cast<uint64_t>(ArgNumber(info, 2, "offset", 0, kMaxU53));
    int timeout = Timeout(info, 3);
    bool end_when_complete = info.Length() > 5 && info[5].ToBoolean().Value();
    return Submit(info.Env(), std::make_unique<WriteFromJob>(info.Env(), r, stream, offset, timeout, ArgView(info, 4), end_when_complete));
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("openRegions", static_cast<double>(regions_.size()));
    o.Set("inFlight", static_cast<double>(threads_->InFlight()));
    return o;
  }

  std::unique_ptr<WaitThreads> threads_;
  std::map<uint32_t, RegionRef> regions_;
  uint32_t next_id_ = 1;
};

void OpenJob::Complete(Napi::Env env) {
  if (code_ != 0) {
    deferred_.Reject(ShmError(env, code_, create_ ? "escp_shm_create" : "escp_shm_open").Value());
    return;
  }
  deferred_.Resolve(addon_->Register(env, shm_));
}

}  // namespace
}  // namespace escp

using EscpShmAddon = escp::ShmAddon;
NODE_API_ADDON(EscpShmAddon)
