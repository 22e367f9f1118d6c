// One io_uring per JavaScript environment (the main thread, each worker thread): a ring's
// submission queue takes one submitter, so rings are never shared across threads.
//
// Operations queue on the JavaScript thread and go to the kernel together: one io_uring_enter
// per batch (the engine asks for a submit once per turn of the event loop, and the ring submits
// again after each batch of completions, with whatever the settled promises queued). At most
// `depth` requests are in the kernel at once; more wait in the ring's queue, so a full queue
// delays an operation and never fails it.
//
// Completions come back without a thread of ours: an eventfd registered with the ring
// (IORING_REGISTER_EVENTFD) is watched by libuv (uv_poll_t on the environment's loop), and the
// poll callback reaps every completion there is and settles their promises on the JavaScript
// thread. A reaper thread would cost a thread per environment and a second wake-up (its own,
// then the thread-safe function's) for every batch.
#pragma once
#include "uring-sys.h"
#ifdef ESCP_HAVE_URING
#include <napi.h>
#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <unordered_map>
#include <utility>
#include <vector>

#include "resource-table.h"

namespace escp {

class Ring;

// A file the ring does I/O on: its descriptor, its slot among the registered files (or -1),
// and whether O_DIRECT is still in effect on it.
struct RingFile {
  int fd;
  int fixed;
  bool direct;
  // A source found in the page cache: buffered reads do not drop the pages they pass.
  bool keep_cache;
  // Buffered writes asked to go uncached do (RWF_DONTCACHE, as in engine-posix) until the file
  // system refuses them.
  bool uncached = true;
};

// One read, write or fadvise. It may take several trips through the kernel (a short read,
// O_DIRECT turned off and the I/O retried); each trip is one submission queue entry.
class RingOp {
 public:
  explicit RingOp(std::shared_ptr<RingFile> file) : file_(std::move(file)) {}
  virtual ~RingOp() = default;
  RingOp(const RingOp&) = delete;
  RingOp& operator=(const RingOp&) = delete;

  // Fills the entry for the next trip (the ring sets user_data).
  virtual void Prepare(Ring& ring, io_uring_sqe* sqe) = 0;
  // A trip's result (the completion's res): true to go again, false when finished.
  virtual bool OnComplete(Ring& ring, int32_t res) = 0;
  // The operation cannot be submitted at all.
  virtual void Fail(int err, const char* syscall) = 0;
  // On the JavaScript thread, inside a callback scope: settle the promise, if any.
  virtual void Settle(Napi::Env env) = 0;
  // The environment is going away: drop references without calling into it.
  virtual void Abandon() {}
  // Nothing waits for it (an fadvise after a read): dropped if its file goes first.
  virtual bool IsAdvice() const { return false; }

  const RingFile& file() const { return *file_; }

 protected:
  std::shared_ptr<RingFile> file_;
};

class Ring {
 public:
  // Sets up this environment's ring of `depth` entries, whose reads and writes move at most
  // `max_trip` bytes per entry (a multiple of 4096). Throws a Napi::Error carrying errno and
  // syscall. `*owner` is cleared when the environment tears the ring down.
  static Ring* Create(Napi::Env env, unsigned depth, size_t max_trip, Ring** owner);
  ~Ring();
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;

  unsigned depth() const { return depth_; }
  size_t max_trip() const { return max_trip_; }
  // Operations queued or in the kernel whose completion JavaScript has not yet seen.
  size_t in_flight() const { return in_kernel_ + waiting_.size(); }
  bool can_advise() const { return can_advise_; }
  const std::shared_ptr<ResourceTable>& buffers() const { return buffers_; }
  size_t fixed_files() const { return files_table_ ? files_table_->Used() : 0; }
  // Counters: io_uring_enter calls that submitted, entries the kernel took, and trips that went
  // through a registered buffer (READ_FIXED / WRITE_FIXED).
  uint64_t enter_calls() const { return enter_calls_; }
  uint64_t entries_submitted() const { return entries_submitted_; }
  uint64_t fixed_trips() const { return fixed_trips_; }
  // The most entries that were in the kernel at once (never more than depth).
  size_t peak_in_kernel() const { return peak_in_kernel_; }

  // Takes ownership; the operation goes to the kernel at the next Submit.
  void Queue(RingOp* op);
  // Moves queued operations into the submission queue, up to `depth` in the kernel, and
  // submits them with one io_uring_enter. Returns how many entries the kernel took.
  unsigned Submit();

  // Files: attached after open, detached before close.
  std::shared_ptr<RingFile> Attach(int fd, bool direct, bool keep_cache);
  std::shared_ptr<RingFile> Find(int fd) const;
  void Detach(int fd);
  // Turns O_DIRECT off for the file: the file system refused it, or the offset or length is
  // not aligned. Linux allows the change on an open descriptor.
  static void DropDirect(RingFile& file);
  static void SetFile(io_uring_sqe* sqe, const RingFile& file);

  // Aligned scratch memory for O_DIRECT I/O on memory that is not aligned, or a padded tail:
  // at least `*size` bytes (set to what was given; null when out of memory).
  uint8_t* TakeScratch(size_t* size);
  void GiveScratch(uint8_t* data, size_t size);

 private:
  Ring(napi_env env, int ring_fd, unsigned depth, size_t max_trip);
  bool Map(const io_uring_params& p);
  static void OnPoll(uv_poll_t* handle, int status, int events);
  void Drain();
  void Reap(std::vector<RingOp*>* done);
  void Settle(const std::vector<RingOp*>& done);
  void Wake();
  void UpdateRef();
  static void OnEnvTeardown(napi_async_cleanup_hook_handle handle, void* arg);
  static void OnClosed(uv_handle_t* handle);

  napi_env env_;
  int ring_fd_;
  unsigned depth_;
  size_t max_trip_;
  int event_fd_ = -1;
  uv_poll_t poll_{};
  bool polling_ = false;
  bool refed_ = false;
  bool closing_ = false;
  Ring** owner_ = nullptr;
  napi_async_cleanup_hook_handle cleanup_ = nullptr;
  std::unique_ptr<Napi::AsyncContext> async_context_;

  // The rings the kernel shares with us.
  void* sq_map_ = nullptr;
  size_t sq_map_size_ = 0;
  void* cq_map_ = nullptr;
  size_t cq_map_size_ = 0;
  io_uring_sqe* sqes_ = nullptr;
  size_t sqes_size_ = 0;
  unsigned* sq_head_ = nullptr;
  unsigned* sq_tail_ = nullptr;
  unsigned sq_mask_ = 0;
  unsigned* cq_head_ = nullptr;
  unsigned* cq_tail_ = nullptr;
  unsigned cq_mask_ = 0;
  io_uring_cqe* cqes_ = nullptr;

  uint64_t enter_calls_ = 0;
  uint64_t entries_submitted_ = 0;
  uint64_t fixed_trips_ = 0;
  size_t peak_in_kernel_ = 0;
  size_t in_kernel_ = 0;          // entries in the submission queue or in the kernel
  std::deque<RingOp*> waiting_;   // not yet in the submission queue
  std::vector<RingOp*> failed_;   // could not be submitted; settled at the next drain
  bool can_advise_ = false;
  std::shared_ptr<ResourceTable> buffers_;
  std::shared_ptr<ResourceTable> files_table_;
  std::unordered_map<int, std::shared_ptr<RingFile>> files_;
  std::vector<std::pair<uint8_t*, size_t>> scratch_;
};

// Whether io_uring can run here, without keeping a ring: 0, or the errno of the failing call
// (`*syscall`), or -1 with `*missing` naming an operation this kernel lacks.
int ProbeUring(const char** syscall, const char** missing);

}  // namespace escp
#endif
