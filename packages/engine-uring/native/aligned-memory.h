// Page-aligned memory handed to JavaScript as external ArrayBuffers (as in engine-posix, whose
// addon this one cannot link against), each registered with the ring of the environment that
// allocated it so that reads and writes into it are READ_FIXED / WRITE_FIXED. A block with I/O
// in flight is pinned and freed only when its last I/O completes.
#pragma once
#include "uring-sys.h"
#ifdef ESCP_HAVE_URING
#include <napi.h>

#include <cstddef>
#include <cstdint>
#include <memory>

#include "resource-table.h"

namespace escp {

// O_DIRECT needs buffers, offsets and lengths aligned to the logical block size of the device;
// 4096 covers every device Linux ships with (512-byte and 4Kn sectors).
constexpr size_t kDirectAlignment = 4096;

struct AlignedBlock;

// Allocates `size` bytes aligned to kDirectAlignment as an external ArrayBuffer, registered in
// `buffers` when there is room (null: not registered).
Napi::ArrayBuffer AllocateAligned(Napi::Env env, size_t size, std::shared_ptr<ResourceTable> buffers);

// Detaches `buffer` (JavaScript can no longer reach its bytes) and frees its memory now, or
// when its last pinned I/O completes. False if the buffer was not made by AllocateAligned.
bool ReleaseAligned(Napi::ArrayBuffer buffer);

// The block behind an ArrayBuffer's bytes, pinned so that ReleaseAligned defers the free; null
// for memory that is not ours (a plain Node Buffer), which JavaScript keeps alive by reference.
AlignedBlock* PinAligned(const void* data);
void UnpinAligned(AlignedBlock* block);

// A pinned block's first byte and size, and its slot in `buffers` (-1: registered elsewhere or
// not at all).
uint8_t* BlockData(const AlignedBlock* block);
size_t BlockSize(const AlignedBlock* block);
int BlockSlot(const AlignedBlock* block, const ResourceTable* buffers);

// Process-wide counts, for tests that check nothing leaks.
int64_t LiveAlignedBlocks();
int64_t LiveAlignedBytes();

}  // namespace escp
#endif
