// A ring's sparse table of registered buffers or files (IORING_REGISTER_BUFFERS2 / FILES2 with
// IORING_RSRC_REGISTER_SPARSE, Linux 5.19). A registered buffer saves the kernel from pinning
// its pages on every read and write (READ_FIXED / WRITE_FIXED); a registered file saves the
// descriptor lookup. Slots are filled and emptied one at a time as buffers are allocated and
// freed and as files are attached and detached.
#pragma once
#include "uring-sys.h"
#ifdef ESCP_HAVE_URING

#include <cstddef>
#include <memory>
#include <mutex>
#include <vector>

namespace escp {

class ResourceTable {
 public:
  enum Kind { kBuffers, kFiles };

  // An empty table of `slots` registered on the ring, or null where the kernel cannot.
  static std::shared_ptr<ResourceTable> Create(int ring_fd, Kind kind, unsigned slots);

  // The slot now holding the buffer or file, or -1 when the table is full or the kernel refused
  // (registered buffers count against RLIMIT_MEMLOCK for users without CAP_IPC_LOCK).
  int AddBuffer(void* data, size_t size);
  int AddFile(int fd);
  // Empties a slot. Any thread: an aligned buffer may be freed by whichever thread lets go last.
  void Remove(int slot);
  // The ring is closing (its registrations go with it): later calls do nothing.
  void Close();
  size_t Used();

 private:
  ResourceTable(int ring_fd, Kind kind, unsigned slots);
  int Fill(const void* data);

  std::mutex mutex_;
  int ring_fd_;
  Kind kind_;
  std::vector<unsigned> free_;
  size_t used_ = 0;
};

}  // namespace escp
#endif
