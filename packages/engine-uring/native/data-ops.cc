#include "data-ops.h"
#ifdef ESCP_HAVE_URING

#include <fcntl.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "aligned-memory.h"
#include "syscall-error.h"

namespace escp {

namespace {

#ifndef RWF_DONTCACHE
#define RWF_DONTCACHE 0x00000080
#endif

bool IsAligned(uint64_t v) { return v % kDirectAlignment == 0; }
bool IsAligned(const void* p) { return IsAligned(reinterpret_cast<uintptr_t>(p)); }
size_t RoundUp(size_t v) { return (v + kDirectAlignment - 1) / kDirectAlignment * kDirectAlignment; }

// Drops pages a buffered read has moved past from the cache (ReadOp::DropBehind). Nothing
// waits for it.
class AdviceOp : public RingOp {
 public:
  AdviceOp(std::shared_ptr<RingFile> file, int64_t offset, size_t len) : RingOp(std::move(file)), offset_(offset), len_(len) {}
  void Prepare(Ring&, io_uring_sqe* sqe) override {
    Ring::SetFile(sqe, *file_);
    sqe->opcode = IORING_OP_FADVISE;
    sqe->off = static_cast<uint64_t>(offset_);
    sqe->len = static_cast<uint32_t>(len_);
    sqe->fadvise_advice = POSIX_FADV_DONTNEED;
  }
  bool OnComplete(Ring&, int32_t) override { return false; }
  void Fail(int, const char*) override {}
  void Settle(Napi::Env) override {}
  bool IsAdvice() const override { return true; }

 private:
  int64_t offset_;
  size_t len_;
};

class ReadOp : public TransferOp {
 public:
  ReadOp(Napi::Env env, Ring& ring, std::shared_ptr<RingFile> file, Napi::TypedArray view, int64_t offset)
      : TransferOp(env, ring, std::move(file), view, offset, false) {
    if (file_->direct && !IsAligned(static_cast<uint64_t>(offset_))) Ring::DropDirect(*file_);
    direct_ = file_->direct;
    // O_DIRECT reads whole aligned units; past the end of file they come back short.
    size_t want = direct_ ? RoundUp(len_) : len_;
    if (!direct_ || (IsAligned(base_) && want <= capacity_)) {
      Aim(base_, want);
    } else if (uint8_t* scratch = UseScratch(want)) {
      Aim(scratch, want);
    }
  }

  bool OnComplete(Ring& ring, int32_t res) override {
    if (GoesAgain(res)) return true;
    if (res < 0) {
      Fail(-res, "read");
      return false;
    }
    done_ += static_cast<size_t>(res);
    // A short read that is not the end of the file goes on from where it stopped. The end is a
    // read of nothing, or with O_DIRECT one that stops short of an aligned unit.
    bool end = res == 0 || (direct_ && !IsAligned(static_cast<uint64_t>(res)));
    if (!end && done_ < want_) return true;
    value_ = static_cast<int64_t>(std::min(done_, len_));
    if (io_ != base_) std::memcpy(base_, io_, static_cast<size_t>(value_));
    if (!direct_ && !file_->keep_cache && value_ > 0 && ring.can_advise()) DropBehind(ring);
    return false;
  }

 private:
  // Read once and gone: keep a large copy from pushing everything else out of the cache. As in
  // engine-posix, one fadvise per window the reads move past rather than one per block; blocks
  // of the previous window may still be in flight, so the window dropped is the one before it.
  static constexpr int64_t kDropWindow = 8 << 20;

  void DropBehind(Ring& ring) {
    int64_t end = offset_ + value_;
    if (end / kDropWindow == offset_ / kDropWindow) return;
    int64_t window = end / kDropWindow * kDropWindow;
    ring.Queue(new AdviceOp(file_, window >= 2 * kDropWindow ? window - 2 * kDropWindow : 0, kDropWindow));
  }
};

class WriteOp : public TransferOp {
 public:
  WriteOp(Napi::Env env, Ring& ring, std::shared_ptr<RingFile> file, Napi::TypedArray view, int64_t offset, bool may_pad, bool uncached)
      : TransferOp(env, ring, std::move(file), view, offset, true) {
    uncached_ = uncached;
    // Padding an unaligned length with zeros is right only at the end of the file; elsewhere it
    // would overwrite the next block.
    if (file_->direct && (!IsAligned(static_cast<uint64_t>(offset_)) || (!IsAligned(len_) && !may_pad))) {
      Ring::DropDirect(*file_);
    }
    direct_ = file_->direct;
    size_t want = direct_ ? RoundUp(len_) : len_;
    if (!direct_ || (IsAligned(base_) && want == len_)) {
      Aim(base_, want);
    } else if (uint8_t* scratch = UseScratch(want)) {
      // Memory that is not aligned (a block node:crypto decrypted), or the padded tail.
      std::memcpy(scratch, base_, len_);
      std::memset(scratch + len_, 0, want - len_);
      Aim(scratch, want);
    }
  }

  bool OnComplete(Ring&, int32_t res) override {
    if (GoesAgain(res)) return true;
    if (res < 0 || (res == 0 && done_ < want_)) {
      Fail(res < 0 ? -res : EIO, "write");
      return false;
    }
    done_ += static_cast<size_t>(res);
    if (done_ < want_) return true;
    if (direct_ && want_ != len_) value_ = offset_ + static_cast<int64_t>(want_);
    return false;
  }
};

}  // namespace

TransferOp::TransferOp(Napi::Env env, Ring& ring, std::shared_ptr<RingFile> file, Napi::TypedArray view, int64_t offset, bool write)
    : RingOp(std::move(file)),
      ring_(ring),
      deferred_(Napi::Promise::Deferred::New(env)),
      keep_(Napi::Persistent(static_cast<Napi::Object>(view))),
      write_(write),
      offset_(offset) {
  Napi::ArrayBuffer ab = view.ArrayBuffer();
  base_ = static_cast<uint8_t*>(ab.Data()) + view.ByteOffset();
  len_ = view.ByteLength();
  block_ = PinAligned(ab.Data());
  // Our memory comes in whole 4 KiB pages, past the ArrayBuffer's length.
  capacity_ = block_ != nullptr ? static_cast<size_t>(BlockData(block_) + BlockSize(block_) - base_) : ab.ByteLength() - view.ByteOffset();
}

TransferOp::~TransferOp() {
  DropScratch();
  UnpinAligned(block_);
}

void TransferOp::Aim(uint8_t* target, size_t want) {
  io_ = target;
  want_ = want;
  done_ = 0;
  slot_ = target == base_ && block_ != nullptr ? BlockSlot(block_, ring_.buffers().get()) : -1;
}

uint8_t* TransferOp::UseScratch(size_t want) {
  scratch_size_ = want;
  scratch_ = ring_.TakeScratch(&scratch_size_);
  if (scratch_ == nullptr) Fail(ENOMEM, "posix_memalign");
  return scratch_;
}

void TransferOp::DropScratch() {
  if (scratch_ == nullptr) return;
  ring_.GiveScratch(scratch_, scratch_size_);
  scratch_ = nullptr;
}

bool TransferOp::GoesAgain(int32_t res) {
  if (res == -EINTR || res == -EAGAIN) return true;
  if (res == -EOPNOTSUPP && uncached_trip_) {
    file_->uncached = false;
    return true;
  }
  if (res != -EINVAL || !direct_) return false;
  // The file system refused O_DIRECT for this I/O: buffered from now on, for the descriptor.
  Ring::DropDirect(*file_);
  direct_ = false;
  DropScratch();
  Aim(base_, len_);
  return true;
}

void TransferOp::Prepare(Ring& ring, io_uring_sqe* sqe) {
  Ring::SetFile(sqe, *file_);
  if (slot_ >= 0) {
    sqe->opcode = write_ ? IORING_OP_WRITE_FIXED : IORING_OP_READ_FIXED;
    sqe->buf_index = static_cast<uint16_t>(slot_);
  } else {
    sqe->opcode = write_ ? IORING_OP_WRITE : IORING_OP_READ;
  }
  sqe->off = static_cast<uint64_t>(offset_) + done_;
  sqe->addr = reinterpret_cast<uint64_t>(io_ + done_);
  sqe->len = static_cast<uint32_t>(std::min(want_ - done_, ring.max_trip()));
  uncached_trip_ = uncached_ && !direct_ && file_->uncached;
  if (uncached_trip_) sqe->rw_flags = RWF_DONTCACHE;
}

void TransferOp::Fail(int err, const char* syscall) {
  err_ = err;
  syscall_ = syscall;
}

void TransferOp::Settle(Napi::Env env) {
  if (err_ != 0) {
    deferred_.Reject(SyscallError(env, err_, syscall_).Value());
  } else {
    deferred_.Resolve(Napi::Number::New(env, static_cast<double>(value_)));
  }
}

void TransferOp::Abandon() { keep_.SuppressDestruct(); }

TransferOp* MakeRead(Napi::Env env, Ring& ring, std::shared_ptr<RingFile> file, Napi::TypedArray view, int64_t offset) {
  return new ReadOp(env, ring, std::move(file), view, offset);
}

TransferOp* MakeWrite(Napi::Env env, Ring& ring, std::shared_ptr<RingFile> file, Napi::TypedArray view, int64_t offset, bool may_pad, bool uncached) {
  return new WriteOp(env, ring, std::move(file), view, offset, may_pad, uncached);
}

bool IsAllZero(const uint8_t* p, size_t n) {
  // The first 16 bytes are zero and every byte equals the one 16 bytes before it.
  size_t head = std::min<size_t>(n, 16);
  for (size_t i = 0; i < head; i++) {
    if (p[i] != 0) return false;
  }
  return n <= 16 || std::memcmp(p, p + 16, n - 16) == 0;
}

}  // namespace escp
#endif
