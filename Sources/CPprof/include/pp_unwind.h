// The stack walker shared by the CPU profiler, thread dumps and the allocation/lock hooks.
// Everything declared here is async-signal-safe: no allocation, no locks, no libc unwinder, and
// every read of memory that may be unmapped is fault-safe.
//
// The walk takes the frame-pointer chain in images built with frame pointers, and the unwind rows
// that `UnwindTables.prepare()` derives from .eh_frame for the leaf frame and for images without
// frame pointers (Debian's glibc, libstdc++, libswiftDispatch); it follows Swift async context
// chains. Before the first `prepare()` it walks frame pointers only.
#ifndef PP_UNWIND_H
#define PP_UNWIND_H

#include <stdint.h>
#include "pp_arch.h"

// Stack entries use Go's convention: every entry is a "return address", so the symbolizer looks up
// entry-1. A leaf taken from an interrupted context is stored as pc+1, and an async resume point as
// its address+1, for the same reason.

// Input flags.
enum {
    // `regs->pc` is the interrupted instruction (a signal context), not a return address.
    PP_UNWIND_FROM_SIGNAL = 1u << 0,
    // The caller knows SIGSEGV and SIGBUS are not blocked on this thread, so faulting reads can be
    // recovered instead of probed (faster). pp_unwind_from_ucontext and pp_capture_stack find
    // this out themselves.
    PP_UNWIND_FAULTS_UNBLOCKED = 1u << 1,
};

// Result flags.
enum {
    // The walk stopped because `max` entries were stored; outer frames are missing.
    PP_STACK_TRUNCATED = 1u << 0,
    // The walk stopped at a frame it could not unwind (no frame pointer or unwind info, bad memory).
    PP_STACK_INCOMPLETE = 1u << 1,
    // Async callers of a Swift task were appended from its async context chain.
    PP_STACK_ASYNC = 1u << 2,
    // The thread was doing the profiler's own work (pp_profiler_work.h): set by the thread dump and
    // the pthread_create hook, not by the walk.
    PP_STACK_PROFILER = 1u << 3,
};

// Walks the stack described by `regs`, storing up to `max` entries leaf first. Returns the count.
// With regs->pc == 0 (and no PP_UNWIND_FROM_SIGNAL) the walk starts at the frame record regs->fp.
int pp_unwind(const pp_regs *regs, unsigned flags, uintptr_t *pcs, int max, unsigned *result_flags);

// Walks the stack of a thread interrupted by a signal, from the handler's ucontext_t: the fast path
// for signal handlers (it reads the interrupted signal mask to decide how to make reads safe).
int pp_unwind_from_ucontext(const void *ucontext, uintptr_t *pcs, int max, unsigned *result_flags);

// The input flags for walking, with pp_unwind, the registers of a signal handler's ucontext_t:
// PP_UNWIND_FROM_SIGNAL, plus PP_UNWIND_FAULTS_UNBLOCKED unless the interrupted code blocked
// SIGSEGV or SIGBUS.
unsigned pp_unwind_flags_for_ucontext(const void *ucontext);

// Captures the calling thread's stack. With skip == 0, entry 0 is the return address into the
// function that called pp_capture_stack; each unit of `skip` drops one more frame.
int pp_capture_stack(int skip, uintptr_t *pcs, int max, unsigned *result_flags);

// Reads one word at `address` without faulting. Returns 0 if the memory is not readable.
int pp_safe_read_word(uintptr_t address, uintptr_t *value);

// 1 if a fault-tolerant read on the calling thread may recover from a fault instead of probing
// the page: the recovery handler is in effect and the thread does not block SIGSEGV/SIGBUS (one
// system call). Async-signal-safe.
int pp_faults_recoverable_here(void);

// pp_safe_read_word with `recover` from pp_faults_recoverable_here (asked once per walk): no
// system call per page when it is 1.
int pp_safe_read_word_recovering(uintptr_t address, uintptr_t *value, int recover);

#endif
