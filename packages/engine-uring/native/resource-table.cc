#include "resource-table.h"
#ifdef ESCP_HAVE_URING

#include <sys/uio.h>

#include <cstdint>

namespace escp {

namespace {

int Update(int ring_fd, ResourceTable::Kind kind, unsigned slot, const void* data) {
  io_uring_rsrc_update2 up{};
  up.offset = slot;
  up.data = reinterpret_cast<uint64_t>(data);
  up.nr = 1;
  unsigned op = kind == ResourceTable::kBuffers ? IORING_REGISTER_BUFFERS_UPDATE : IORING_REGISTER_FILES_UPDATE2;
  return UringRegister(ring_fd, op, &up, sizeof(up));
}

}  // namespace

std::shared_ptr<ResourceTable> ResourceTable::Create(int ring_fd, Kind kind, unsigned slots) {
  io_uring_rsrc_register rr{};
  rr.nr = slots;
  rr.flags = IORING_RSRC_REGISTER_SPARSE;
  unsigned op = kind == kBuffers ? IORING_REGISTER_BUFFERS2 : IORING_REGISTER_FILES2;
  if (UringRegister(ring_fd, op, &rr, sizeof(rr)) < 0) return nullptr;
  return std::shared_ptr<ResourceTable>(new ResourceTable(ring_fd, kind, slots));
}

ResourceTable::ResourceTable(int ring_fd, Kind kind, unsigned slots) : ring_fd_(ring_fd), kind_(kind) {
  for (unsigned i = slots; i > 0; i--) free_.push_back(i - 1);
}

int ResourceTable::Fill(const void* data) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (ring_fd_ < 0 || free_.empty()) return -1;
  unsigned slot = free_.back();
  if (Update(ring_fd_, kind_, slot, data) < 0) return -1;
  free_.pop_back();
  used_ += 1;
  return static_cast<int>(slot);
}

int ResourceTable::AddBuffer(void* data, size_t size) {
  iovec iov{data, size};
  return Fill(&iov);
}

int ResourceTable::AddFile(int fd) {
  int32_t value = fd;
  return Fill(&value);
}

void ResourceTable::Remove(int slot) {
  if (slot < 0) return;
  std::lock_guard<std::mutex> lock(mutex_);
  if (ring_fd_ < 0) return;
  // An empty iovec, or descriptor -1, empties the slot; requests already submitted keep their
  // own reference to the buffer or file until they complete.
  iovec none{nullptr, 0};
  int32_t no_fd = -1;
  Update(ring_fd_, kind_, static_cast<unsigned>(slot), kind_ == kBuffers ? static_cast<const void*>(&none) : &no_fd);
  free_.push_back(static_cast<unsigned>(slot));
  used_ -= 1;
}

void ResourceTable::Close() {
  std::lock_guard<std::mutex> lock(mutex_);
  ring_fd_ = -1;
}

size_t ResourceTable::Used() {
  std::lock_guard<std::mutex> lock(mutex_);
  return used_;
}

}  // namespace escp
#endif
