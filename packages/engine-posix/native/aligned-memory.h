// Page-aligned memory handed to JavaScript as external ArrayBuffers, so the same bytes go to
// O_DIRECT I/O, node:crypto, zstd and sockets without a copy. Blocks are freed when JavaScript
// releases them (or, failing that, when the ArrayBuffer is collected); a block with I/O in
// flight is pinned and freed only when its last I/O completes.
#pragma once
#include <napi.h>

#include <cstddef>
#include <cstdint>

namespace escp {

// O_DIRECT needs buffers, offsets and lengths aligned to the logical block size of the device;
// 4096 covers every device Linux ships with (512-byte and 4Kn sectors).
constexpr size_t kDirectAlignment = 4096;

struct AlignedBlock;

// Allocates `size` bytes aligned to kDirectAlignment as an external ArrayBuffer.
Napi::ArrayBuffer AllocateAligned(Napi::Env env, size_t size);

// Detaches `buffer` (JavaScript can no longer reach its bytes) and frees its memory now, or
// when its last pinned I/O completes. False if the buffer was not made by AllocateAligned.
bool ReleaseAligned(Napi::ArrayBuffer buffer);

// The block behind an ArrayBuffer's bytes, pinned so that ReleaseAligned defers the free; null
// for memory that is not ours (a plain Node Buffer), which JavaScript keeps alive by reference.
AlignedBlock* PinAligned(const void* data);
void UnpinAligned(AlignedBlock* block);

// Process-wide counts, for tests that check nothing leaks.
int64_t LiveAlignedBlocks();
int64_t LiveAlignedBytes();

}  // namespace escp
