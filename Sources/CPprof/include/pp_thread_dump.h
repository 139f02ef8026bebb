// Thread dumps: every thread records its own stack when asked by a signal (the goroutine profile).
#ifndef PP_THREAD_DUMP_H
#define PP_THREAD_DUMP_H

#include <stdint.h>

// The deepest stack a thread dump records (Go's profstackdepth).
#define PP_THREAD_STACK_MAX 128

// What happened to one thread of a dump.
enum {
    // Its stack was recorded (by its own signal handler, or directly for the calling thread).
    PP_THREAD_SAMPLED = 0,
    // It did not answer before the deadline (it may block the signal, be in uninterruptible
    // sleep, or be stopped).
    PP_THREAD_NO_ANSWER = 1,
    // It exited before it could answer.
    PP_THREAD_EXITED = 2,
    // It was not asked: the signal could not be queued, or the dump ran out of time or slots.
    PP_THREAD_NOT_ASKED = 3,
    // It blocks the dump signal (SigBlk in /proc/self/task/<tid>/status), so it cannot answer.
    PP_THREAD_BLOCKS_SIGNAL = 4,
};

enum { PP_NO_SYSCALL_SEEN = 0, PP_IN_SYSCALL = 1, PP_RETURNED_FROM_SYSCALL = 2 };

typedef struct pp_thread_stack {
    int32_t tid;
    int32_t status;
    // PP_STACK_* flags of the walk.
    uint32_t flags;
    // The system call the thread was blocked in (kernel number), or -1.
    int32_t syscall;
    // What its registers say of system calls: PP_IN_SYSCALL when it was blocked in one (restarting,
    // or interrupted with EINTR by the dump signal: then `syscall` is -1 on x86_64, the number being
    // lost), PP_RETURNED_FROM_SYSCALL when one had just returned (a woken thread not yet back in its
    // caller), PP_NO_SYSCALL_SEEN otherwise.
    int32_t in_syscall;
    // Its label tag (pp_labels_current() on that thread).
    uint64_t label_tag;
    int32_t depth;
    uintptr_t pcs[PP_THREAD_STACK_MAX];
} pp_thread_stack;

// Asks each of the `count` threads `tids` (of this process) to record its stack into `out[i]`,
// keeping at most `window` requests in flight, and waits until every thread has answered or
// `timeout_ns` has passed. Threads that have not answered by then are reported as
// PP_THREAD_NO_ANSWER and their late answers are discarded (never written into `out` or into a
// reused slot). The calling thread records its own stack directly. Nothing is ever left stopped:
// each thread walks its own stack in the handler and returns.
//
// The signal is SIGPROF, through the library's SIGPROF dispatcher (see pp_signals.h): the only
// signal libdispatch's worker threads, and so the Swift concurrency pool, accept. If SIGPROF
// belongs to a foreign handler, a free real-time signal is used instead.
//
// Returns 0, or -1 if no signal could be claimed (all taken by other handlers).
// One dump at a time (others wait). Not for use in a handler.
int pp_thread_dump(const int32_t *tids, int count, pp_thread_stack *out, int window, int64_t timeout_ns);

// The signal thread dumps use, or -1 before the first dump.
int pp_thread_dump_signal(void);

#endif
