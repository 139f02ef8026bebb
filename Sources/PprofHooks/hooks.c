// Interposed libc entry points. Filled in by the heap, contention and threadcreate work.
#include "PprofHooks.h"
