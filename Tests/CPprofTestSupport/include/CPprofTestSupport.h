// Test support in C: a real signal handler that records what a profiler's handler would see.
#ifndef CPPROF_TEST_SUPPORT_H
#define CPPROF_TEST_SUPPORT_H

#include <stdint.h>

// One observation taken inside the signal handler on the interrupted thread.
typedef struct pp_test_label_record {
    int32_t marker;  // the thread's marker (pp_test_label_marker_set) at that instant
    int32_t tid;     // the interrupted thread
    uint64_t tag;    // pp_labels_current() at that instant
} pp_test_label_record;

// Installs the recording handler on a free real-time signal. Returns the signal or -1.
int pp_test_label_probe_install(void);

// Unblocks the probe signal on the calling thread. libdispatch (and so the Swift Concurrency pool)
// blocks every asynchronous signal except SIGPROF on its worker threads.
void pp_test_label_probe_unblock(void);

// Sets the calling thread's marker, which the handler records next to the tag.
void pp_test_label_marker_set(int32_t marker);

// Sends the probe signal to thread `tid` of this process. Returns 0 or -1.
int pp_test_label_probe_signal(int32_t tid);

// Forgets every record and starts recording again.
void pp_test_label_probe_reset(void);

// Number of complete records (at most the capacity; later signals are counted in `dropped`).
uint64_t pp_test_label_probe_read(pp_test_label_record *out, uint64_t capacity, uint64_t *dropped);

#endif
