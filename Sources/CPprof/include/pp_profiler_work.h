// The profiler's own work, kept out of the profiles it writes: while a thread is inside
// pp_profiler_work_enter/leave (calls nest), its allocations are not sampled, its lock waits and
// releases are not block or mutex events, and its stack in a thread dump and the threads it creates
// carry PP_STACK_PROFILER, so that the goroutine and threadcreate profiles can mark them.
#ifndef PP_PROFILER_WORK_H
#define PP_PROFILER_WORK_H

void pp_profiler_work_enter(void);
void pp_profiler_work_leave(void);

// Makes the calling thread (one the profiler runs) the profiler's for the rest of its life.
void pp_profiler_work_mark_thread(void);

// 1 inside the calling thread's profiler work, else 0. Safe in handlers and hooks (one
// initial-exec thread-local load).
int pp_profiler_work_active(void);

#endif
