// Whether this build has io_uring, and the three raw system calls. The engine uses the kernel
// interface directly (<linux/io_uring.h> from linux-libc-dev) rather than liburing, so building
// it needs no extra package. Headers older than Linux 5.19 (no sparse registered tables) or
// missing altogether still build the addon: it then reports why the engine cannot run.
#pragma once

#if defined(__linux__) && defined(__has_include)
#if __has_include(<linux/io_uring.h>)
#include <linux/io_uring.h>
#if defined(IORING_RSRC_REGISTER_SPARSE)
#define ESCP_HAVE_URING 1
#endif
#endif
#endif

#ifdef ESCP_HAVE_URING
#include <sys/syscall.h>
#include <unistd.h>

namespace escp {

inline int UringSetup(unsigned entries, io_uring_params* params) {
  return static_cast<int>(syscall(__NR_io_uring_setup, entries, params));
}

inline int UringEnter(int ring_fd, unsigned to_submit, unsigned min_complete, unsigned flags) {
  return static_cast<int>(syscall(__NR_io_uring_enter, ring_fd, to_submit, min_complete, flags, nullptr, 0));
}

inline int UringRegister(int ring_fd, unsigned opcode, const void* arg, unsigned nr_args) {
  return static_cast<int>(syscall(__NR_io_uring_register, ring_fd, opcode, arg, nr_args));
}

}  // namespace escp
#endif
