// Kernel thread IDs for the Swift side (Glibc does not export gettid to Swift).
#ifndef PP_THREAD_ID_H
#define PP_THREAD_ID_H

// The calling thread's kernel thread ID. Async-signal-safe.
int pp_gettid(void);

#endif
