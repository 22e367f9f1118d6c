// Reads and writes at offsets through the ring, with engine-posix's O_DIRECT rules: an offset
// that is not aligned, or an unaligned length anywhere but at the end of the file, turns
// O_DIRECT off for the descriptor; EINVAL from the kernel does the same and the I/O is retried
// buffered; a final unaligned tail is written padded to 4 KiB (the handle trims it at close).
#pragma once
#include "uring-sys.h"
#ifdef ESCP_HAVE_URING
#include <napi.h>

#include <cstddef>
#include <cstdint>
#include <memory>

#include "aligned-memory.h"
#include "ring.h"

namespace escp {

// An operation with a promise. If it failed before reaching the ring (no memory for scratch),
// HasFailed() is true and it should be settled at once.
class TransferOp : public RingOp {
 public:
  TransferOp(Napi::Env env, Ring& ring, std::shared_ptr<RingFile> file, Napi::TypedArray view, int64_t offset, bool write);
  ~TransferOp() override;
  Napi::Promise Promise() const { return deferred_.Promise(); }
  bool HasFailed() const { return err_ != 0; }

  void Prepare(Ring& ring, io_uring_sqe* sqe) override;
  void Fail(int err, const char* syscall) override;
  void Settle(Napi::Env env) override;
  void Abandon() override;

 protected:
  // A result after which the same I/O goes again: EINTR or EAGAIN, EINVAL with O_DIRECT
  // (which is then turned off and the I/O retried buffered), or EOPNOTSUPP for an uncached
  // write (retried through the cache, as every later write to the file).
  bool GoesAgain(int32_t res);
  // Aims the I/O at `target` (the caller's memory or scratch) for `want` bytes, from the start.
  void Aim(uint8_t* target, size_t want);
  // Scratch memory of at least `want` bytes, or null (the operation has failed).
  uint8_t* UseScratch(size_t want);
  void DropScratch();

  Ring& ring_;
  Napi::Promise::Deferred deferred_;
  Napi::ObjectReference keep_;  // the caller's buffer stays alive while the kernel uses it
  AlignedBlock* block_;         // pinned, when the buffer is our aligned memory
  bool write_;
  int64_t offset_;
  uint8_t* base_;
  size_t len_;
  size_t capacity_;  // bytes from base_ to the end of its memory (padded O_DIRECT reads fill them)
  bool direct_ = false;
  bool uncached_ = false;       // a buffered write may go uncached
  bool uncached_trip_ = false;  // the trip in the kernel asked for an uncached write
  uint8_t* io_ = nullptr;
  size_t want_ = 0;
  size_t done_ = 0;
  int slot_ = -1;  // registered buffer holding io_, or -1
  uint8_t* scratch_ = nullptr;
  size_t scratch_size_ = 0;
  int64_t value_ = 0;
  int err_ = 0;
  const char* syscall_ = "";
};

// Resolves with the bytes read: fewer only at the end of the file.
TransferOp* MakeRead(Napi::Env env, Ring& ring, std::shared_ptr<RingFile> file, Napi::TypedArray view, int64_t offset);
// may_pad: this write ends the file, so O_DIRECT may pad its unaligned tail with zeros. Resolves
// with the padded end of file when it did, else 0. uncached: written buffered, it goes uncached
// (RWF_DONTCACHE) where the file system takes it.
TransferOp* MakeWrite(Napi::Env env, Ring& ring, std::shared_ptr<RingFile> file, Napi::TypedArray view, int64_t offset, bool may_pad, bool uncached);

bool IsAllZero(const uint8_t* p, size_t n);

}  // namespace escp
#endif
