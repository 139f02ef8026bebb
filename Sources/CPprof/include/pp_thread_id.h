// Kernel thread IDs for the Swift side (Glibc does not export gettid to Swift).
#ifndef PP_THREAD_ID_H
#define PP_THREAD_ID_H

#include <stdint.h>

// The calling thread's kernel thread ID. Async-signal-safe.
int pp_gettid(void);

// Opens /proc/self/task for pp_thread_list_read. Returns the fd or a negative errno.
int pp_thread_list_open(void);

// Reads the tids of every live thread (up to `max`) from a directory opened with
// pp_thread_list_open; the fd can be read again and again. Returns the count, or -1.
int pp_thread_list_read(int directory, int32_t *tids, int max);

#endif
