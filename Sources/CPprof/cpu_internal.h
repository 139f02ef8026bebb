// State shared by cpu_sampler.c (handler, rings) and cpu_sources.c (arming threads).
#ifndef PP_CPU_INTERNAL_H
#define PP_CPU_INTERNAL_H

#include <stdint.h>

#include "pp_cpu.h"

// perf_event fds the handler accepts are tracked in bitmaps indexed by fd; higher fds get a timer.
#define PP_CPU_MAX_PERF_FD 65536

struct pp_cpu_state {
    // The run's settings: written by pp_cpu_begin before `running` is set, read by handlers after.
    int engine;
    int signo;
    int thread_info;
    uint32_t generation;  // stamped into timer signals, so a late signal of an earlier run is ignored
    int64_t period_ns;
    uint32_t perf_fd_limit;
    // perf engine on a standard signal (SIGPROF): after its first overflow an event overflows again
    // and again on its own. On a real-time signal each overflow is allowed by the handler (one at a
    // time), so that a thread blocking the signal cannot queue signals without bound
    // (RLIMIT_SIGPENDING is per user).
    int perf_continuous;

    int running;              // 1 while samples are accepted (seq_cst with the in-flight counters)
    int bypass;               // benchmarks only
    uint32_t handlers_inflight;
    uint32_t listeners_inflight;
    uint32_t perf_fds_open;

    // ITIMER engine: process CPU time when the timer was armed, and sampling periods credited since.
    int64_t process_cpu_origin_ns;
    uint64_t process_periods_credited;

    pp_cpu_counters counters;  // updated with atomic adds
};

extern struct pp_cpu_state pp_cpu;

// Bitmaps of perf fds of the current run, and of those whose first (random) period is pending.
extern uint64_t pp_cpu_perf_fds[PP_CPU_MAX_PERF_FD / 64];
extern uint64_t pp_cpu_perf_first_period[PP_CPU_MAX_PERF_FD / 64];

static inline int pp_cpu_bit_test(const uint64_t *bits, int index) {
    return (__atomic_load_n(&bits[index >> 6], __ATOMIC_ACQUIRE) >> (index & 63)) & 1;
}

static inline void pp_cpu_bit_set(uint64_t *bits, int index) {
    __atomic_or_fetch(&bits[index >> 6], 1ull << (index & 63), __ATOMIC_RELEASE);
}

// Clears the bit; returns whether it was set.
static inline int pp_cpu_bit_clear(uint64_t *bits, int index) {
    uint64_t mask = 1ull << (index & 63);
    return (__atomic_fetch_and(&bits[index >> 6], ~mask, __ATOMIC_ACQ_REL) & mask) != 0;
}

// A uniformly random first expiry in (0, period] (lock-free; safe in hooks and handlers).
int64_t pp_cpu_random_first_period(int64_t period_ns);
// A period drawn uniformly from [period/2, 3·period/2), for the next sample (handler-safe).
int64_t pp_cpu_random_period(int64_t period_ns);
// setitimer(ITIMER_PROF) with `period_ns` and a first expiry of `first_ns` (0, 0: off; handler-safe).
int pp_cpu_set_process_timer(int64_t period_ns, int64_t first_ns);

// The process's CPU time (CLOCK_PROCESS_CPUTIME_ID) in nanoseconds, by raw system call.
int64_t pp_cpu_process_cpu_ns(void);

// cpu_sources.c: the thread-start listener and the claim table, set up by pp_cpu_begin.
int pp_cpu_sources_prepare(void);
void pp_cpu_thread_started(void);
void pp_cpu_claims_reset(void);

// The perf_event fd last armed for thread `tid` in this run, or -1 (may belong to an exited
// incarnation: check pp_cpu_perf_fds). Async-signal-safe.
int pp_cpu_perf_fd_of_thread(int tid);

// For handlers of other signals that share the profiling signal (thread dumps): re-enables the
// calling thread's perf event if it is still in its one-overflow first period, whose overflow
// signal the kernel may have dropped while this signal was pending. Async-signal-safe.
void pp_cpu_rearm_after_queued_signal(int signo);

#endif
