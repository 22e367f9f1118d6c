#include "ring.h"
#ifdef ESCP_HAVE_URING

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "aligned-memory.h"
#include "syscall-error.h"

namespace escp {

namespace {

// Slots for registered buffers (a transfer's worker uses a few dozen) and files (a few open at
// once per worker); past them, I/O goes through plain READ/WRITE and descriptor lookups.
constexpr unsigned kBufferSlots = 1024;
constexpr unsigned kFileSlots = 256;
// Scratch buffers kept for reuse; more are freed as they come back.
constexpr size_t kSpareScratch = 8;

// The kernel's list of the operations it supports (IORING_REGISTER_PROBE, Linux 5.6).
class OpProbe {
 public:
  explicit OpProbe(int ring_fd) : mem_(sizeof(io_uring_probe) + 256 * sizeof(io_uring_probe_op)) {
    ok_ = UringRegister(ring_fd, IORING_REGISTER_PROBE, mem_.data(), 256) == 0;
  }
  bool ok() const { return ok_; }
  bool Supports(unsigned op) const {
    auto* probe = reinterpret_cast<const io_uring_probe*>(mem_.data());
    return ok_ && op <= probe->last_op && (probe->ops[op].flags & IO_URING_OP_SUPPORTED) != 0;
  }

 private:
  std::vector<uint8_t> mem_;
  bool ok_;
};

}  // namespace

int ProbeUring(const char** syscall, const char** missing) {
  io_uring_params p{};
  int fd = UringSetup(2, &p);
  if (fd < 0) {
    *syscall = "io_uring_setup";
    return errno;
  }
  OpProbe probe(fd);
  static const std::pair<unsigned, const char*> kNeeded[] = {
      {IORING_OP_READ, "IORING_OP_READ"},
      {IORING_OP_WRITE, "IORING_OP_WRITE"},
      {IORING_OP_READ_FIXED, "IORING_OP_READ_FIXED"},
      {IORING_OP_WRITE_FIXED, "IORING_OP_WRITE_FIXED"},
  };
  int result = 0;
  if (!probe.ok()) {
    *missing = "IORING_REGISTER_PROBE";
    result = -1;
  }
  for (const auto& [op, name] : kNeeded) {
    if (result == 0 && !probe.Supports(op)) {
      *missing = name;
      result = -1;
    }
  }
  close(fd);
  return result;
}

Ring::Ring(napi_env env, int ring_fd, unsigned depth, size_t max_trip)
    : env_(env), ring_fd_(ring_fd), depth_(depth), max_trip_(max_trip) {}

Ring::~Ring() {
  if (buffers_) buffers_->Close();
  if (files_table_) files_table_->Close();
  if (sqes_ != nullptr) munmap(sqes_, sqes_size_);
  if (cq_map_ != nullptr && cq_map_ != sq_map_) munmap(cq_map_, cq_map_size_);
  if (sq_map_ != nullptr) munmap(sq_map_, sq_map_size_);
  if (event_fd_ >= 0) close(event_fd_);
  close(ring_fd_);
  for (auto& s : scratch_) std::free(s.first);
}

Ring* Ring::Create(Napi::Env env, unsigned depth, size_t max_trip, Ring** owner) {
  io_uring_params p{};
  // The completion queue is twice the submission queue (the kernel's default) and at most
  // `depth` requests are in the kernel at once, so completions never overflow.
  p.flags = IORING_SETUP_CLAMP;
  int fd = UringSetup(depth, &p);
  if (fd < 0) throw SyscallError(env, errno, "io_uring_setup");
  std::unique_ptr<Ring> ring(new Ring(env, fd, std::min(depth, p.sq_entries), max_trip));
  if (!ring->Map(p)) throw SyscallError(env, errno, "mmap");
  ring->event_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (ring->event_fd_ < 0) throw SyscallError(env, errno, "eventfd");
  if (UringRegister(fd, IORING_REGISTER_EVENTFD, &ring->event_fd_, 1) < 0) throw SyscallError(env, errno, "io_uring_register");
  ring->can_advise_ = OpProbe(fd).Supports(IORING_OP_FADVISE);
  ring->buffers_ = ResourceTable::Create(fd, ResourceTable::kBuffers, kBufferSlots);
  ring->files_table_ = ResourceTable::Create(fd, ResourceTable::kFiles, kFileSlots);
  ring->async_context_ = std::make_unique<Napi::AsyncContext>(env, "escp-uring");
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || uv_poll_init(loop, &ring->poll_, ring->event_fd_) != 0) {
    throw Napi::Error::New(env, "escp-uring: cannot watch the ring's eventfd on the event loop");
  }
  // From here the ring is deleted only once libuv has closed the poll handle (OnClosed).
  Ring* r = ring.release();
  r->poll_.data = r;
  uv_poll_start(&r->poll_, UV_READABLE, OnPoll);
  // An idle ring must not keep the process alive: referenced only while I/O is in flight.
  uv_unref(reinterpret_cast<uv_handle_t*>(&r->poll_));
  r->owner_ = owner;
  napi_add_async_cleanup_hook(env, OnEnvTeardown, r, &r->cleanup_);
  return r;
}

bool Ring::Map(const io_uring_params& p) {
  sq_map_size_ = p.sq_off.array + p.sq_entries * sizeof(unsigned);
  cq_map_size_ = p.cq_off.cqes + p.cq_entries * sizeof(io_uring_cqe);
  bool single = (p.features & IORING_FEAT_SINGLE_MMAP) != 0;
  if (single) sq_map_size_ = cq_map_size_ = std::max(sq_map_size_, cq_map_size_);
  void* sq = mmap(nullptr, sq_map_size_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring_fd_, IORING_OFF_SQ_RING);
  if (sq == MAP_FAILED) return false;
  sq_map_ = sq;
  void* cq = single ? sq : mmap(nullptr, cq_map_size_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring_fd_, IORING_OFF_CQ_RING);
  if (cq == MAP_FAILED) return false;
  cq_map_ = cq;
  sqes_size_ = p.sq_entries * sizeof(io_uring_sqe);
  void* sqes = mmap(nullptr, sqes_size_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring_fd_, IORING_OFF_SQES);
  if (sqes == MAP_FAILED) return false;
  sqes_ = static_cast<io_uring_sqe*>(sqes);

  auto* s = static_cast<uint8_t*>(sq);
  sq_head_ = reinterpret_cast<unsigned*>(s + p.sq_off.head);
  sq_tail_ = reinterpret_cast<unsigned*>(s + p.sq_off.tail);
  sq_mask_ = *reinterpret_cast<unsigned*>(s + p.sq_off.ring_mask);
  // Entry i of the submission queue is always sqes_[i]: the indirection array is the identity.
  auto* array = reinterpret_cast<unsigned*>(s + p.sq_off.array);
  for (unsigned i = 0; i < p.sq_entries; i++) array[i] = i;
  auto* c = static_cast<uint8_t*>(cq);
  cq_head_ = reinterpret_cast<unsigned*>(c + p.cq_off.head);
  cq_tail_ = reinterpret_cast<unsigned*>(c + p.cq_off.tail);
  cq_mask_ = *reinterpret_cast<unsigned*>(c + p.cq_off.ring_mask);
  cqes_ = reinterpret_cast<io_uring_cqe*>(c + p.cq_off.cqes);
  return true;
}

void Ring::Queue(RingOp* op) {
  if (closing_) {
    op->Abandon();
    delete op;
    return;
  }
  waiting_.push_back(op);
  UpdateRef();
}

unsigned Ring::Submit() {
  if (closing_) return 0;
  unsigned tail = *sq_tail_;  // only this thread writes it
  while (!waiting_.empty() && in_kernel_ < depth_) {
    RingOp* op = waiting_.front();
    waiting_.pop_front();
    io_uring_sqe* sqe = &sqes_[tail & sq_mask_];
    std::memset(sqe, 0, sizeof(*sqe));
    op->Prepare(*this, sqe);
    sqe->user_data = reinterpret_cast<uint64_t>(op);
    if (sqe->opcode == IORING_OP_READ_FIXED || sqe->opcode == IORING_OP_WRITE_FIXED) fixed_trips_ += 1;
    tail += 1;
    in_kernel_ += 1;
  }
  peak_in_kernel_ = std::max(peak_in_kernel_, in_kernel_);
  __atomic_store_n(sq_tail_, tail, __ATOMIC_RELEASE);
  unsigned taken = 0;
  for (;;) {
    unsigned head = __atomic_load_n(sq_head_, __ATOMIC_ACQUIRE);
    if (head == tail) break;
    int r = UringEnter(ring_fd_, tail - head, 0, 0);
    if (r > 0) {
      enter_calls_ += 1;
      entries_submitted_ += static_cast<unsigned>(r);
      taken += static_cast<unsigned>(r);
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    if (r == 0 || errno == EAGAIN || errno == EBUSY) {
      // The kernel is short of memory for requests: try again on the next turn of the loop.
      Wake();
      break;
    }
    // Anything else is a fault of ours; fail what the kernel did not take rather than hang it.
    int err = errno;
    for (unsigned i = head; i != tail; i++) {
      auto* op = reinterpret_cast<RingOp*>(sqes_[i & sq_mask_].user_data);
      op->Fail(err, "io_uring_enter");
      failed_.push_back(op);
      in_kernel_ -= 1;
    }
    __atomic_store_n(sq_tail_, head, __ATOMIC_RELEASE);
    Wake();
    break;
  }
  UpdateRef();
  return taken;
}

void Ring::OnPoll(uv_poll_t* handle, int status, int) {
  auto* ring = static_cast<Ring*>(handle->data);
  if (status < 0 || ring->closing_) return;
  ring->Drain();
}

void Ring::Drain() {
  uint64_t count;
  while (read(event_fd_, &count, sizeof(count)) < 0 && errno == EINTR) {
  }
  std::vector<RingOp*> done;
  Reap(&done);
  Submit();  // trips that go again, and operations that waited for room
  if (!done.empty()) {
    Settle(done);
    Submit();  // what the settled promises' continuations queued
  }
  UpdateRef();
}

void Ring::Reap(std::vector<RingOp*>* done) {
  unsigned head = *cq_head_;  // only this thread writes it
  unsigned tail = __atomic_load_n(cq_tail_, __ATOMIC_ACQUIRE);
  std::vector<RingOp*> again;
  for (; head != tail; head++) {
    const io_uring_cqe& cqe = cqes_[head & cq_mask_];
    auto* op = reinterpret_cast<RingOp*>(cqe.user_data);
    in_kernel_ -= 1;
    if (!closing_ && op->OnComplete(*this, cqe.res)) {
      again.push_back(op);
    } else {
      done->push_back(op);
    }
  }
  __atomic_store_n(cq_head_, head, __ATOMIC_RELEASE);
  // A trip that goes again goes before operations that have not started.
  waiting_.insert(waiting_.begin(), again.begin(), again.end());
  done->insert(done->end(), failed_.begin(), failed_.end());
  failed_.clear();
}

void Ring::Settle(const std::vector<RingOp*>& done) {
  Napi::Env env(env_);
  try {
    Napi::HandleScope scope(env);
    // Promise continuations (microtasks) run when the callback scope closes.
    Napi::CallbackScope callback(env, *async_context_);
    for (RingOp* op : done) {
      try {
        op->Settle(env);
      } catch (const Napi::Error&) {
        // This environment can no longer run JavaScript (a worker being terminated).
      }
    }
  } catch (const Napi::Error&) {
  }
  for (RingOp* op : done) delete op;
}

void Ring::Wake() {
  uint64_t one = 1;
  while (write(event_fd_, &one, sizeof(one)) < 0 && errno == EINTR) {
  }
}

void Ring::UpdateRef() {
  bool busy = in_kernel_ > 0 || !waiting_.empty() || !failed_.empty();
  if (busy == refed_ || closing_) return;
  refed_ = busy;
  if (busy) {
    uv_ref(reinterpret_cast<uv_handle_t*>(&poll_));
  } else {
    uv_unref(reinterpret_cast<uv_handle_t*>(&poll_));
  }
}

std::shared_ptr<RingFile> Ring::Attach(int fd, bool direct, bool keep_cache) {
  Detach(fd);
  int fixed = files_table_ ? files_table_->AddFile(fd) : -1;
  auto file = std::make_shared<RingFile>(RingFile{fd, fixed, direct, keep_cache});
  files_[fd] = file;
  return file;
}

std::shared_ptr<RingFile> Ring::Find(int fd) const {
  auto it = files_.find(fd);
  return it == files_.end() ? nullptr : it->second;
}

void Ring::Detach(int fd) {
  auto it = files_.find(fd);
  if (it == files_.end()) return;
  RingFile* file = it->second.get();
  // What is queued for the file goes now, while its descriptor is open; an fadvise that has to
  // wait for room is dropped.
  Submit();
  for (auto w = waiting_.begin(); w != waiting_.end();) {
    if (&(*w)->file() == file && (*w)->IsAdvice()) {
      delete *w;
      w = waiting_.erase(w);
    } else {
      ++w;
    }
  }
  if (files_table_) files_table_->Remove(file->fixed);
  file->fixed = -1;
  files_.erase(it);
  UpdateRef();
}

void Ring::DropDirect(RingFile& file) {
  if (!file.direct) return;
  int fl = fcntl(file.fd, F_GETFL);
  if (fl >= 0) fcntl(file.fd, F_SETFL, fl & ~O_DIRECT);
  file.direct = false;
}

void Ring::SetFile(io_uring_sqe* sqe, const RingFile& file) {
  if (file.fixed >= 0) {
    sqe->fd = file.fixed;
    sqe->flags |= IOSQE_FIXED_FILE;
  } else {
    sqe->fd = file.fd;
  }
}

uint8_t* Ring::TakeScratch(size_t* size) {
  for (auto it = scratch_.begin(); it != scratch_.end(); ++it) {
    if (it->second >= *size) {
      uint8_t* data = it->first;
      *size = it->second;
      scratch_.erase(it);
      return data;
    }
  }
  void* data = nullptr;
  if (posix_memalign(&data, kDirectAlignment, *size) != 0) return nullptr;
  return static_cast<uint8_t*>(data);
}

void Ring::GiveScratch(uint8_t* data, size_t size) {
  if (scratch_.size() < kSpareScratch) {
    scratch_.emplace_back(data, size);
  } else {
    std::free(data);
  }
}

void Ring::OnEnvTeardown(napi_async_cleanup_hook_handle handle, void* arg) {
  auto* ring = static_cast<Ring*>(arg);
  ring->cleanup_ = handle;
  ring->closing_ = true;
  if (ring->owner_ != nullptr) *ring->owner_ = nullptr;
  for (RingOp* op : ring->waiting_) {
    op->Abandon();
    delete op;
  }
  ring->waiting_.clear();
  for (RingOp* op : ring->failed_) {
    op->Abandon();
    delete op;
  }
  ring->failed_.clear();
  // The kernel may still be reading into memory that is about to be freed: wait for every
  // request it holds. If waiting itself fails, what is left leaks (pinned) rather than being
  // freed under the kernel.
  int errors = 0;
  while (ring->in_kernel_ > 0 && errors < 100) {
    unsigned tail = *ring->sq_tail_;
    unsigned pending = tail - __atomic_load_n(ring->sq_head_, __ATOMIC_ACQUIRE);
    if (UringEnter(ring->ring_fd_, pending, 1, IORING_ENTER_GETEVENTS) < 0) {
      errors += errno == EINTR ? 0 : 1;
    }
    std::vector<RingOp*> done;
    ring->Reap(&done);
    for (RingOp* op : done) {
      op->Abandon();
      delete op;
    }
  }
  if (ring->buffers_) ring->buffers_->Close();
  if (ring->files_table_) ring->files_table_->Close();
  ring->async_context_.reset();
  uv_poll_stop(&ring->poll_);
  uv_close(reinterpret_cast<uv_handle_t*>(&ring->poll_), OnClosed);
}

void Ring::OnClosed(uv_handle_t* handle) {
  auto* ring = static_cast<Ring*>(handle->data);
  napi_async_cleanup_hook_handle cleanup = ring->cleanup_;
  delete ring;
  napi_remove_async_cleanup_hook(cleanup);
}

}  // namespace escp
#endif
