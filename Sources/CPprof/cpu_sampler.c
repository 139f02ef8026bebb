// The CPU profiler's signal handler and the rings it writes.
//
// Runs in the signal handler (async-signal-safe: no allocation, no locks but try-locks, raw system
// calls only, errno saved): cpu_signal_handler and everything it calls — accept_signal,
// process_timer_weight, pp_cpu_process_cpu_ns, record_sample, choose_stripe, count_lost,
// draw_next_period, pp_cpu_random_period, pp_cpu_set_process_timer — and
// pp_cpu_rearm_after_queued_signal (called by the thread-dump handler) and ignore_signal (the SIGIO
// handler). pp_cpu_random_first_period runs inside the pthread_create hook (lock-free). Everything
// else here runs on ordinary threads (start, stop, the reader's drain).
#include <errno.h>
#include <pthread.h>
#include <linux/perf_event.h>
#include <signal.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/prctl.h>
#include <time.h>
#include <ucontext.h>

#include "arch.h"
#include "cpu_internal.h"
#include "pp_labels.h"
#include "pp_signals.h"
#include "pp_thread_events.h"
#include "pp_unwind.h"

struct pp_cpu_state pp_cpu;
uint64_t pp_cpu_perf_fds[PP_CPU_MAX_PERF_FD / 64];
uint64_t pp_cpu_perf_first_period[PP_CPU_MAX_PERF_FD / 64];

// ---- Rings --------------------------------------------------------------------------------------
//
// One single-producer/single-consumer ring of 64-bit words per stripe. A handler becomes the
// producer of a stripe by winning its try-lock (never waits: it tries three stripes, then drops
// the sample). The reader is the only consumer. Positions are free-running word counts. Records
// never wrap: a 0 word at the end of a ring means "continue at offset 0" (as in Go's profBuf).

struct stripe {
    // Producer side.
    int lock;
    uint32_t padding;
    uint64_t write_position;
    uint64_t lost_samples;
    uint64_t lost_weight;
    char producer_line[32];
    // Consumer side.
    uint64_t read_position;
    char consumer_line[56];
};

struct storage {
    uint32_t ring_words;  // power of two
    uint32_t padding;
    size_t mapped_bytes;
    struct stripe stripes[PP_CPU_STRIPES];
    uint64_t words[];  // PP_CPU_STRIPES * ring_words
};

// The rings of the current run; reused by the next run unless a handler never finished (then
// they are retired: left mapped, never written again by us, and the next run maps new ones).
static struct storage *storage;
static int storage_retired;

static const int header_words = sizeof(pp_cpu_record) / 8;
static const int thread_words = sizeof(pp_cpu_record_thread) / 8;

static uint32_t round_up_power_of_two(uint32_t value) {
    uint32_t result = 4096;
    while (result < value && result < (1u << 30)) result <<= 1;
    return result;
}

static int prepare_storage(uint32_t ring_words) {
    ring_words = round_up_power_of_two(ring_words);
    if (storage_retired) {
        storage = NULL;
        storage_retired = 0;
    }
    if (storage && storage->ring_words == ring_words) {
        for (int i = 0; i < PP_CPU_STRIPES; i++) {
            struct stripe *s = &storage->stripes[i];
            s->write_position = 0;
            s->read_position = 0;
            s->lost_samples = 0;
            s->lost_weight = 0;
            s->lock = 0;
        }
        return 0;
    }
    if (storage) {
        munmap(storage, storage->mapped_bytes);
        storage = NULL;
    }
    size_t bytes = sizeof(struct storage) + (size_t)PP_CPU_STRIPES * ring_words * sizeof(uint64_t);
    void *memory = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) return -ENOMEM;
    storage = memory;
    storage->ring_words = ring_words;
    storage->mapped_bytes = bytes;
    return 0;
}

// Stacks of different threads lie far apart, so the stack pointer spreads threads over stripes.
static unsigned choose_stripe(uintptr_t sp) {
    return (unsigned)((((uint64_t)sp >> 14) * 0x9e3779b97f4a7c15ull) >> 60) % PP_CPU_STRIPES;
}

static void count_lost(struct stripe *s, uint64_t weight) {
    if (s) {
        __atomic_add_fetch(&s->lost_samples, 1, __ATOMIC_RELAXED);
        __atomic_add_fetch(&s->lost_weight, weight, __ATOMIC_RELAXED);
    } else {
        __atomic_add_fetch(&pp_cpu.counters.lost_samples, 1, __ATOMIC_RELAXED);
        __atomic_add_fetch(&pp_cpu.counters.lost_weight, weight, __ATOMIC_RELAXED);
    }
}

// Walks the interrupted stack straight into a ring. Async-signal-safe.
static void record_sample(const pp_regs *regs, unsigned walk_flags, uint64_t weight, int unwind) {
    struct storage *rings = storage;
    unsigned first = choose_stripe(regs->sp);
    struct stripe *s = NULL;
    for (unsigned attempt = 0; attempt < 3; attempt++) {
        struct stripe *candidate = &rings->stripes[(first + attempt) % PP_CPU_STRIPES];
        if (__atomic_exchange_n(&candidate->lock, 1, __ATOMIC_ACQUIRE) == 0) {
            s = candidate;
            break;
        }
    }
    if (!s) {
        count_lost(NULL, weight);
        return;
    }

    const int with_thread = pp_cpu.thread_info;
    const uint64_t size = rings->ring_words;
    const uint64_t longest = (uint64_t)header_words + (with_thread ? thread_words : 0) + PP_CPU_MAX_FRAMES;
    uint64_t position = s->write_position;
    uint64_t read = __atomic_load_n(&s->read_position, __ATOMIC_ACQUIRE);
    uint64_t offset = position & (size - 1);
    uint64_t skip = offset + longest > size ? size - offset : 0;
    if (size - (position - read) < skip + longest) {
        count_lost(s, weight);
        __atomic_store_n(&s->lock, 0, __ATOMIC_RELEASE);
        return;
    }
    uint64_t *ring = rings->words + (size_t)((s - rings->stripes)) * size;
    if (skip) {
        ring[offset] = 0;
        position += skip;
        offset = 0;
    }
    uint64_t *words = ring + offset;
    pp_cpu_record *record = (pp_cpu_record *)words;
    uintptr_t *stack = (uintptr_t *)(words + header_words);
    if (with_thread) {
        pp_cpu_record_thread *thread = (pp_cpu_record_thread *)(words + header_words);
        thread->tid = pp_syscall0(SYS_gettid);
        for (int i = 0; i < 16; i++) thread->name[i] = 0;
        pp_syscall2(SYS_prctl, PR_GET_NAME, thread->name);
        thread->name[15] = 0;
        stack = (uintptr_t *)(words + header_words + thread_words);
    }
    unsigned unwind_flags = 0;
    int count = unwind ? pp_unwind(regs, walk_flags, stack, PP_CPU_MAX_FRAMES, &unwind_flags) : 0;
    if (count < 0) count = 0;
    record->words = (uint16_t)((uintptr_t *)stack - (uintptr_t *)words + count);
    record->unwind_flags = (uint8_t)unwind_flags;
    record->has_thread = (uint8_t)with_thread;
    record->reserved = 0;
    record->weight = weight;
    record->tag = pp_labels_current();
    __atomic_store_n(&s->write_position, position + record->words, __ATOMIC_RELEASE);
    __atomic_store_n(&s->lock, 0, __ATOMIC_RELEASE);
}

// ---- The handler --------------------------------------------------------------------------------

int64_t pp_cpu_process_cpu_ns(void) {
    struct timespec now;
    if (pp_syscall2(SYS_clock_gettime, CLOCK_PROCESS_CPUTIME_ID, &now) != 0) return -1;
    return (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
}

// The process timer fires at most once per kernel tick and reports no overruns, so a signal
// stands for the process CPU time used since the previous one: credit the periods elapsed on the
// precise clock. (The timer itself runs on tick-sampled CPU time, so a signal may also come a
// little early and stand for no period at all.)
static uint64_t process_timer_weight(void) {
    int64_t now = pp_cpu_process_cpu_ns();
    if (now < 0) return 1;
    int64_t elapsed = now - pp_cpu.process_cpu_origin_ns;
    uint64_t due = elapsed > 0 ? (uint64_t)(elapsed / pp_cpu.period_ns) : 0;
    uint64_t credited = __atomic_load_n(&pp_cpu.process_periods_credited, __ATOMIC_RELAXED);
    while (due > credited) {
        if (__atomic_compare_exchange_n(&pp_cpu.process_periods_credited, &credited, due, 1, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED))
            return due - credited;
    }
    return 0;
}

// Decides whether a signal is one of ours (returns 1) and what it weighs (*weight, may be 0).
// Each engine accepts only its own si_code, so one mechanism's signal is never counted twice and
// a stray kill(SIGPROF) from outside is never a sample. Sets *refresh_fd for a perf signal.
static int accept_signal(const siginfo_t *info, uint64_t *weight, int *refresh_fd) {
    const int code = info->si_code;
    *weight = 1;
    switch (pp_cpu.engine) {
    case PP_CPU_ENGINE_PERF:
    case PP_CPU_ENGINE_TIMER:
        if (code == POLL_IN || code == POLL_HUP) {
            // F_SETSIG delivery from a perf_event fd (POLL_HUP: its event limit reached 0).
            int fd = info->si_fd;
            if (fd < 0 || fd >= PP_CPU_MAX_PERF_FD || !pp_cpu_bit_test(pp_cpu_perf_fds, fd)) return 0;
            *refresh_fd = fd;
            return 1;
        }
        if (code == SI_TIMER) {
            if ((uint32_t)info->si_value.sival_int != pp_cpu.generation) return 0;
            // Expirations the kernel merged into this signal (the CPU-time clock is checked on the
            // scheduler tick, so above HZ most expirations arrive as overruns).
            int overrun = info->si_overrun;
            *weight = 1 + (uint64_t)(overrun > 0 ? overrun : 0);
            return 1;
        }
        return 0;
    case PP_CPU_ENGINE_ITIMER:
        if (code != SI_KERNEL) return 0;
        *weight = process_timer_weight();
        return 1;
    case PP_CPU_ENGINE_MANUAL:
        return code == SI_TKILL;
    default:
        return 0;
    }
}

// A fixed period can lock onto a workload that alternates at that period (or a multiple of it) and
// see only one side of it. Each next period is drawn uniformly from [period/2, 3·period/2): the
// mean, and so each sample's weight of one period, stays right. A timer engine's expirations are
// still checked on the kernel tick; the draw moves which tick takes the sample.
static void draw_next_period(const siginfo_t *info, int perf_fd) {
    const int64_t next = pp_cpu_random_period(pp_cpu.period_ns);
    if (perf_fd >= 0) {
        // Restarts the event's count from now with the new period.
        pp_syscall3(SYS_ioctl, perf_fd, PERF_EVENT_IOC_PERIOD, &next);
    } else if (info->si_code == SI_TIMER) {
        // The signal comes on the tick after the expiry, so the draw moves the next expiry relative
        // to the timer's own schedule, not to now: arming it `next` from now would add the
        // lateness to every period that a sample stands for. When the drawn expiry has already
        // passed, the schedule stays as it is.
        struct itimerspec spec;
        if (pp_syscall2(SYS_timer_gettime, info->si_timerid, &spec) != 0) return;
        const int64_t remaining = (int64_t)spec.it_value.tv_sec * 1000000000 + spec.it_value.tv_nsec;
        const int64_t value = remaining - pp_cpu.period_ns + next;
        if (remaining <= 0 || value <= 0) return;
        spec.it_interval.tv_sec = pp_cpu.period_ns / 1000000000;
        spec.it_interval.tv_nsec = pp_cpu.period_ns % 1000000000;
        spec.it_value.tv_sec = value / 1000000000;
        spec.it_value.tv_nsec = value % 1000000000;
        pp_syscall4(SYS_timer_settime, info->si_timerid, 0, &spec, NULL);
    } else if (pp_cpu.engine == PP_CPU_ENGINE_ITIMER) {
        pp_cpu_set_process_timer(pp_cpu.period_ns, next);
    }
}

static void cpu_signal_handler(int signo, siginfo_t *info, void *context) {
    const int saved_errno = errno;
    __atomic_add_fetch(&pp_cpu.handlers_inflight, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&pp_cpu.running, __ATOMIC_SEQ_CST) && signo == pp_cpu.signo && info) {
        int refresh_fd = -1;
        uint64_t weight = 0;
        if (!accept_signal(info, &weight, &refresh_fd)) {
            __atomic_add_fetch(&pp_cpu.counters.foreign_signals, 1, __ATOMIC_RELAXED);
        } else {
            int bypass = __atomic_load_n(&pp_cpu.bypass, __ATOMIC_RELAXED);
            if (bypass != PP_CPU_BYPASS_ALL) {
                pp_regs regs;
                pp_regs_from_ucontext(context, &regs);
                record_sample(&regs, pp_unwind_flags_for_ucontext(context), weight, bypass != PP_CPU_BYPASS_UNWIND);
            }
            if (pp_cpu.engine != PP_CPU_ENGINE_MANUAL) draw_next_period(info, refresh_fd);
        }
        if (refresh_fd >= 0) {
            if (pp_cpu_bit_test(pp_cpu_perf_first_period, refresh_fd))
                pp_cpu_bit_clear(pp_cpu_perf_first_period, refresh_fd);
            // On a real-time signal the event disabled itself after one overflow; allow exactly one
            // more. On SIGPROF only an event whose allowance ran out (POLL_HUP: the first period,
            // or a thread dump's re-arm) is enabled again, for good: the refresh reschedules the
            // thread's perf context, which cost the sampled thread as much as the rest of the
            // sample (measured in docs/cpu.md).
            if (!pp_cpu.perf_continuous) pp_syscall3(SYS_ioctl, refresh_fd, PERF_EVENT_IOC_REFRESH, 1);
            else if (info->si_code == POLL_HUP) pp_syscall3(SYS_ioctl, refresh_fd, PERF_EVENT_IOC_ENABLE, 0);
        }
    }
    __atomic_sub_fetch(&pp_cpu.handlers_inflight, 1, __ATOMIC_SEQ_CST);
    errno = saved_errno;
}

// The kernel queues a standard signal at most once per thread: a perf overflow signal raised while
// another SIGPROF is pending on the thread (a thread dump's request, often sent while the thread
// blocks or has not yet taken it) is dropped. An event in its one-overflow first period has then
// disabled itself with nobody to enable it, and the thread would never be sampled again. A handler
// of such a signal enables the event of its own thread; an event still running is left as it is.
void pp_cpu_rearm_after_queued_signal(int signo) {
    __atomic_add_fetch(&pp_cpu.handlers_inflight, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&pp_cpu.running, __ATOMIC_SEQ_CST) && pp_cpu.engine == PP_CPU_ENGINE_PERF &&
        pp_cpu.signo == signo && pp_cpu.perf_continuous) {
        int fd = pp_cpu_perf_fd_of_thread((int)pp_syscall0(SYS_gettid));
        if (fd >= 0 && fd < PP_CPU_MAX_PERF_FD && pp_cpu_bit_test(pp_cpu_perf_fds, fd) &&
            pp_cpu_bit_test(pp_cpu_perf_first_period, fd))
            pp_syscall3(SYS_ioctl, fd, PERF_EVENT_IOC_ENABLE, 0);
    }
    __atomic_sub_fetch(&pp_cpu.handlers_inflight, 1, __ATOMIC_SEQ_CST);
}

// For a perf engine on a real-time signal: if the signal cannot be queued the kernel sends SIGIO
// instead, whose default action kills the process. Never let that happen.
static void ignore_signal(int signo, siginfo_t *info, void *context) {
    (void)signo;
    (void)info;
    (void)context;
}

int pp_cpu_claim_signal(int engine) {
    int candidates[2 + 64];
    int count = 0;
    candidates[count++] = SIGPROF;
    // setitimer(ITIMER_PROF) can only raise SIGPROF; the per-thread engines can use others.
    // libdispatch's worker threads (the Swift concurrency pool among them) block every signal
    // but a few, SIGPROF and SIGURG among them, and every real-time signal: SIGURG (default
    // action: ignore) comes before those.
    if (engine != PP_CPU_ENGINE_ITIMER) {
        candidates[count++] = SIGURG;
        count += pp_signal_realtime_candidates(candidates + count, 64);
    }
    int signo = pp_signal_claim(candidates, count, cpu_signal_handler);
    if (signo > 0 && signo != SIGPROF && engine == PP_CPU_ENGINE_PERF) {
        int sigio = SIGIO;
        pp_signal_claim(&sigio, 1, ignore_signal);
    }
    return signo;
}

// ---- Start and stop -----------------------------------------------------------------------------

static uint64_t random_state;

// splitmix64 over an atomic counter: lock-free, and good enough to spread sampling instants.
static uint64_t next_random(void) {
    uint64_t z = __atomic_add_fetch(&random_state, 0x9e3779b97f4a7c15ull, __ATOMIC_RELAXED);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

int64_t pp_cpu_random_first_period(int64_t period_ns) {
    if (period_ns <= 1) return 1;
    return 1 + (int64_t)(next_random() % (uint64_t)period_ns);
}

int64_t pp_cpu_random_period(int64_t period_ns) {
    if (period_ns <= 1) return 1;
    return period_ns / 2 + (int64_t)(next_random() % (uint64_t)period_ns);
}

// Resolves, outside any handler, every lazily bound function the handler calls, so that the
// dynamic linker never runs inside it.
static void bind_handler_calls(void) {
    errno = errno;
    (void)pp_labels_current();
    ucontext_t context;
    __builtin_memset(&context, 0, sizeof context);
    pp_regs regs;
    pp_regs_from_ucontext(&context, &regs);
    PP_CURRENT_REGS(regs);
    uintptr_t stack[4];
    unsigned flags;
    (void)pp_unwind(&regs, 0, stack, 4, &flags);
}

// In the child of a fork only the forking thread exists, with no timers and no reader: forget the
// parent's run (its perf fds stay open in the child until exec; they signal only the parent).
static void forget_run_after_fork(void) {
    pp_thread_events_set_start_listener(NULL);
    __atomic_store_n(&pp_cpu.running, 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&pp_cpu.handlers_inflight, 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&pp_cpu.listeners_inflight, 0, __ATOMIC_SEQ_CST);
    if (storage) storage_retired = 1;
}

int pp_cpu_begin(const pp_cpu_config *config) {
    static int fork_handler_installed;
    if (!fork_handler_installed) {
        pthread_atfork(NULL, NULL, forget_run_after_fork);
        fork_handler_installed = 1;
    }
    if (__atomic_load_n(&pp_cpu.running, __ATOMIC_SEQ_CST)) return -EBUSY;
    if (config->period_ns <= 0 || config->signo <= 0) return -EINVAL;
    int result = prepare_storage(config->ring_words);
    if (result != 0) return result;
    result = pp_cpu_sources_prepare();
    if (result != 0) return result;
    bind_handler_calls();

    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    __atomic_store_n(&random_state, (uint64_t)now.tv_nsec * 0x2545f4914f6cdd1dull ^ (uint64_t)now.tv_sec,
                     __ATOMIC_RELAXED);
    pp_cpu.engine = config->engine;
    pp_cpu.signo = config->signo;
    pp_cpu.thread_info = config->thread_info != 0;
    pp_cpu.period_ns = config->period_ns;
    pp_cpu.perf_fd_limit = config->perf_fd_limit;
    pp_cpu.perf_continuous = config->signo < SIGRTMIN;
    pp_cpu.generation++;
    __builtin_memset(&pp_cpu.counters, 0, sizeof pp_cpu.counters);
    __atomic_store_n(&pp_cpu.running, 1, __ATOMIC_SEQ_CST);
    if (config->engine == PP_CPU_ENGINE_PERF || config->engine == PP_CPU_ENGINE_TIMER)
        pp_thread_events_set_start_listener(pp_cpu_thread_started);
    return 0;
}

int pp_cpu_end(int wait_ms) {
    pp_thread_events_set_start_listener(NULL);
    __atomic_store_n(&pp_cpu.running, 0, __ATOMIC_SEQ_CST);
    // A handler or listener that incremented its counter before seeing running == 0 may still be
    // writing; one that increments later sees 0 and touches nothing.
    struct timespec pause = {0, 200 * 1000};
    for (long waited_us = 0;; waited_us += 200) {
        if (__atomic_load_n(&pp_cpu.handlers_inflight, __ATOMIC_SEQ_CST) == 0 &&
            __atomic_load_n(&pp_cpu.listeners_inflight, __ATOMIC_SEQ_CST) == 0) {
            pp_cpu_claims_reset();
            return 1;
        }
        if (waited_us >= (long)wait_ms * 1000) break;
        nanosleep(&pause, NULL);
    }
    // A thread stopped inside the handler could still write to these rings: never reuse them.
    storage_retired = 1;
    return 0;
}

__attribute__((noinline)) double pp_cpu_bench_record_here(int iterations, int walk) {
    ucontext_t context;
    getcontext(&context);
    pp_regs regs;
    pp_regs_from_ucontext(&context, &regs);
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    unsigned walk_flags = pp_unwind_flags_for_ucontext(&context);
    for (int i = 0; i < iterations; i++) record_sample(&regs, walk_flags, 1, walk);
    clock_gettime(CLOCK_MONOTONIC, &end);
    double nanos = (double)(end.tv_sec - start.tv_sec) * 1e9 + (double)(end.tv_nsec - start.tv_nsec);
    return iterations > 0 ? nanos / iterations : 0;
}

void pp_cpu_name_current_thread(const char *name) { pp_syscall2(SYS_prctl, PR_SET_NAME, name); }

void pp_cpu_set_handler_bypass(int bypass) { __atomic_store_n(&pp_cpu.bypass, bypass, __ATOMIC_RELAXED); }

// ---- The reader ---------------------------------------------------------------------------------

void pp_cpu_drain(pp_cpu_record_visitor visitor, void *context) {
    struct storage *rings = storage;
    if (!rings) return;
    const uint64_t size = rings->ring_words;
    for (int i = 0; i < PP_CPU_STRIPES; i++) {
        struct stripe *s = &rings->stripes[i];
        const uint64_t *ring = rings->words + (size_t)i * size;
        uint64_t read = s->read_position;
        const uint64_t written = __atomic_load_n(&s->write_position, __ATOMIC_ACQUIRE);
        while (read < written) {
            uint64_t offset = read & (size - 1);
            const pp_cpu_record *record = (const pp_cpu_record *)(ring + offset);
            if (ring[offset] == 0) {
                read += size - offset;
                continue;
            }
            int words = record->words;
            const pp_cpu_record_thread *thread = NULL;
            const uintptr_t *stack = (const uintptr_t *)(ring + offset + header_words);
            int count = words - header_words;
            if (record->has_thread) {
                thread = (const pp_cpu_record_thread *)stack;
                stack += thread_words;
                count -= thread_words;
            }
            visitor(context, record, thread, stack, count);
            read += (uint64_t)words;
        }
        __atomic_store_n(&s->read_position, read, __ATOMIC_RELEASE);
    }
}

void pp_cpu_read_counters(pp_cpu_counters *out) {
    out->lost_samples = __atomic_load_n(&pp_cpu.counters.lost_samples, __ATOMIC_RELAXED);
    out->lost_weight = __atomic_load_n(&pp_cpu.counters.lost_weight, __ATOMIC_RELAXED);
    out->foreign_signals = __atomic_load_n(&pp_cpu.counters.foreign_signals, __ATOMIC_RELAXED);
    out->perf_fallbacks = __atomic_load_n(&pp_cpu.counters.perf_fallbacks, __ATOMIC_RELAXED);
    struct storage *rings = storage;
    if (!rings) return;
    for (int i = 0; i < PP_CPU_STRIPES; i++) {
        out->lost_samples += __atomic_load_n(&rings->stripes[i].lost_samples, __ATOMIC_RELAXED);
        out->lost_weight += __atomic_load_n(&rings->stripes[i].lost_weight, __ATOMIC_RELAXED);
    }
}
