// Profiler labels as seen from signal handlers.
#ifndef PP_LABELS_H
#define PP_LABELS_H

#include <stdint.h>

// The label-set tag in force on the calling thread (for a Swift task: the task's), 0 for none.
// Async-signal-safe: no locks, no allocation.
uint64_t pp_labels_current(void);

#endif
