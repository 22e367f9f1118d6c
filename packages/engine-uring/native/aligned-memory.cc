#include "aligned-memory.h"
#ifdef ESCP_HAVE_URING

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <unordered_map>

namespace escp {

struct AlignedBlock {
  void* data;
  size_t size;
  std::shared_ptr<ResourceTable> buffers;  // where it is registered, if anywhere
  int slot;
  int pins = 0;
  bool released = false;  // JavaScript let go; free at the last unpin
  bool freed = false;
};

namespace {

// One registry for the process: a block is looked up by its data pointer when I/O pins it and
// when JavaScript releases it, from whichever thread's environment made it.
std::mutex registry_mutex;
std::unordered_map<const void*, AlignedBlock*> registry;
std::atomic<int64_t> live_blocks{0};
std::atomic<int64_t> live_bytes{0};

// Caller holds registry_mutex.
void FreeLocked(AlignedBlock* block) {
  if (block->freed) return;
  // Out of the ring's table first: a slot must never name memory that malloc may hand out again.
  if (block->buffers) block->buffers->Remove(block->slot);
  block->buffers.reset();
  registry.erase(block->data);
  std::free(block->data);
  block->freed = true;
  live_blocks -= 1;
  live_bytes -= static_cast<int64_t>(block->size);
}

}  // namespace

Napi::ArrayBuffer AllocateAligned(Napi::Env env, size_t size, std::shared_ptr<ResourceTable> buffers) {
  void* data = nullptr;
  size_t rounded = (size + kDirectAlignment - 1) / kDirectAlignment * kDirectAlignment;
  if (rounded == 0) rounded = kDirectAlignment;
  if (posix_memalign(&data, kDirectAlignment, rounded) != 0) {
    throw Napi::Error::New(env, "escp-uring: out of memory for an aligned buffer");
  }
  int slot = buffers ? buffers->AddBuffer(data, rounded) : -1;
  auto* block = new AlignedBlock{data, rounded, slot >= 0 ? std::move(buffers) : nullptr, slot};
  {
    std::lock_guard<std::mutex> lock(registry_mutex);
    registry[data] = block;
  }
  live_blocks += 1;
  live_bytes += static_cast<int64_t>(rounded);
  // The AlignedBlock outlives an early release so that this finalizer always has a valid hint.
  return Napi::ArrayBuffer::New(
      env, data, size,
      [](Napi::Env, void*, AlignedBlock* b) {
        std::lock_guard<std::mutex> lock(registry_mutex);
        if (b->pins == 0) {
          FreeLocked(b);
          delete b;
        } else {
          b->released = true;  // the last unpin frees the memory; the block itself is leaked
        }
      },
      block);
}

bool ReleaseAligned(Napi::ArrayBuffer buffer) {
  if (buffer.IsDetached()) return false;
  void* data = buffer.Data();
  {
    std::lock_guard<std::mutex> lock(registry_mutex);
    auto it = registry.find(data);
    if (it == registry.end()) return false;
    AlignedBlock* block = it->second;
    block->released = true;
    if (block->pins == 0) FreeLocked(block);
  }
  buffer.Detach();
  return true;
}

AlignedBlock* PinAligned(const void* data) {
  std::lock_guard<std::mutex> lock(registry_mutex);
  auto it = registry.find(data);
  if (it == registry.end()) return nullptr;
  it->second->pins += 1;
  return it->second;
}

void UnpinAligned(AlignedBlock* block) {
  if (block == nullptr) return;
  std::lock_guard<std::mutex> lock(registry_mutex);
  block->pins -= 1;
  if (block->pins == 0 && block->released) FreeLocked(block);
}

// A pinned block is not freed, so these read fields that do not change until then.
uint8_t* BlockData(const AlignedBlock* block) { return static_cast<uint8_t*>(block->data); }
size_t BlockSize(const AlignedBlock* block) { return block->size; }
int BlockSlot(const AlignedBlock* block, const ResourceTable* buffers) {
  return buffers != nullptr && block->buffers.get() == buffers ? block->slot : -1;
}

int64_t LiveAlignedBlocks() { return live_blocks.load(); }
int64_t LiveAlignedBytes() { return live_bytes.load(); }

}  // namespace escp
#endif
