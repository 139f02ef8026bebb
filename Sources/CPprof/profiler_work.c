// The calling thread's profiler-work depth (see pp_profiler_work.h). pp_profiler_work_active runs in
// signal handlers (the thread dump's) and inside the malloc, lock and pthread_create hooks: it is one
// initial-exec thread-local load, valid from before main until the thread's last free at exit.
#include "pp_profiler_work.h"

#include <stdint.h>

static __thread uint32_t work_depth __attribute__((tls_model("initial-exec")));
static __thread uint8_t thread_is_profilers __attribute__((tls_model("initial-exec")));

void pp_profiler_work_enter(void) { work_depth++; }

void pp_profiler_work_leave(void) {
    if (work_depth > 0) work_depth--;
}

void pp_profiler_work_mark_thread(void) { thread_is_profilers = 1; }

int pp_profiler_work_active(void) { return work_depth != 0 || thread_is_profilers; }
