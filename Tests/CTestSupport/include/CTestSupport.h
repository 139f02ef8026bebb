// C code for test scenarios in pprof-testhelper: things a test needs done from C rather than Swift
// (e.g. a C library taking a pthread mutex).
#ifndef CTEST_SUPPORT_H
#define CTEST_SUPPORT_H

#include <pthread.h>
#include <stdint.h>

// `threads` threads each take a shared pthread mutex `iterations` times at ctest_lock_site, hold it
// for `hold_us` microseconds and release it at ctest_unlock_site. Returns the total time the threads
// spent waiting for the mutex, in nanoseconds, as measured around the lock calls.
int64_t ctest_contend_pthread_mutex(int threads, int iterations, int hold_us);

// Forks; the child contends on a pthread mutex of its own with `threads` threads (as
// ctest_contend_pthread_mutex) and exits. Returns the child's wait status, or -1 if it did not
// finish within `timeout_ms` (it is then killed).
int ctest_fork_and_contend(int threads, int iterations, int hold_us, int timeout_ms);

// Waits for child process `child`: its wait status, or -1 if it did not finish within `timeout_ms`
// (it is then killed).
int ctest_wait_for_child(int child, int timeout_ms);

// Forks; the child dumps its own (only) thread with pp_thread_dump and exits 0 if that worked.
// Returns the child's wait status, or -1 if it did not finish within `timeout_ms` (it is then killed).
int ctest_fork_and_dump(int timeout_ms);

// Makes the calling thread's sleeps end on time (timer slack of 1 ns instead of 50 µs), so short
// sleeps are short.
void ctest_precise_sleeps(void);

// Whether a thread sleeps waiting for this (normal, locked) glibc mutex.
int ctest_mutex_has_sleeper(pthread_mutex_t *mutex);

#endif
