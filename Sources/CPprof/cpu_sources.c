// Arming threads for the CPU profiler: a perf_event fd or a CPU-time timer per thread, the
// process-wide itimer, the claim table that keeps one thread from being armed twice, and the
// queue of threads armed by the thread-start listener.
//
// Runs inside the pthread_create hook (on the new thread), so uses raw system calls only, no
// locks and no allocation: pp_cpu_thread_started and everything it calls — pp_thread_start_time,
// pp_cpu_claim_thread, pp_cpu_unclaim_thread, pp_cpu_arm_thread (arm_perf, arm_timer),
// pp_cpu_quiet_source, pp_cpu_release_source, push_started, pp_cpu_random_first_period.
// pp_cpu_sources_prepare, pp_cpu_claims_reset, pp_cpu_take_started_thread, pp_cpu_probe_engine and
// the process timer's arming run on ordinary threads. pp_cpu_perf_fd_of_thread (two atomic loads)
// and pp_cpu_set_process_timer (one system call) also run in signal handlers; nothing else here does.
#include <errno.h>
#include <fcntl.h>
#include <linux/perf_event.h>
#include <signal.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>

#include "arch.h"
#include "cpu_internal.h"

#define pp_syscall5(n, a, b, c, d, e) pp_syscall6((n), (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), 0)

// The kernel's struct sigevent (glibc's may lack the thread-id member's name).
struct kernel_sigevent {
    union sigval value;
    int signo;
    int notify;
    int tid;
    int padding[11];
};

#ifndef SIGEV_THREAD_ID
#define SIGEV_THREAD_ID 4
#endif

// ---- Thread start times ---------------------------------------------------------------------

static int append_decimal(char *out, unsigned value) {
    char digits[12];
    int n = 0;
    do {
        digits[n++] = (char)('0' + value % 10);
        value /= 10;
    } while (value);
    for (int i = 0; i < n; i++) out[i] = digits[n - 1 - i];
    return n;
}

// Reads /proc/self/task/<tid>/<leaf> into `text` (raw system calls). Returns the bytes read, or
// a value <= 0 if the thread has exited.
static long read_task_file(int tid, const char *leaf, char *text, long size) {
    if (tid <= 0) return -1;
    char path[48];
    int length = 0;
    for (const char *p = "/proc/self/task/"; *p; p++) path[length++] = *p;
    length += append_decimal(path + length, (unsigned)tid);
    path[length++] = '/';
    for (const char *p = leaf; *p && length < (int)sizeof path - 1; p++) path[length++] = *p;
    path[length] = 0;
    long fd = pp_syscall4(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0) return fd;
    long n = pp_syscall3(SYS_read, fd, text, size);
    pp_syscall1(SYS_close, fd);
    return n;
}

uint64_t pp_thread_start_time(int tid) {
    char text[1024];
    long n = read_task_file(tid, "stat", text, sizeof text);
    if (n <= 0) return 0;
    // "tid (comm) state ppid ...": comm may hold ')' and spaces, so start after the last ')'.
    long paren = -1;
    for (long i = 0; i < n; i++)
        if (text[i] == ')') paren = i;
    if (paren < 0) return 0;
    int field = 2;
    uint64_t value = 0;
    for (long i = paren + 1; i < n; i++) {
        if (text[i] == ' ') {
            if (field == 22) break;
            field++;
            value = 0;
        } else if (field == 22) {
            if (text[i] < '0' || text[i] > '9') return 0;
            value = value * 10 + (uint64_t)(text[i] - '0');
        }
    }
    return field == 22 ? value : 0;
}

// Whether thread `tid` blocks `signo` (SigBlk in /proc/self/task/<tid>/status): 1, 0, or -1 if
// unknown (exited).
int pp_thread_blocks_signal(int tid, int signo) {
    if (signo <= 0 || signo > 64) return -1;
    char text[4096];
    long n = read_task_file(tid, "status", text, sizeof text);
    static const char key[] = "\nSigBlk:\t";
    for (long i = 0; i + (long)sizeof key - 1 + 16 <= n; i++) {
        int match = 1;
        for (int k = 0; key[k] && match; k++) match = text[i + k] == key[k];
        if (!match) continue;
        uint64_t mask = 0;
        for (long j = i + (long)sizeof key - 1; j < n; j++) {
            char c = text[j];
            int digit = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
            if (digit < 0) break;
            mask = mask << 4 | (uint64_t)digit;
        }
        return (int)((mask >> (signo - 1)) & 1);
    }
    return -1;
}

// ---- Claims ---------------------------------------------------------------------------------
//
// One 32-bit word per possible tid (pid_max of them, mapped once, pages committed only when
// touched): 0, or a value derived from the start time of the incarnation that somebody armed.

static uint32_t *claims;
static uint32_t claim_count;
// Per tid (same size as `claims`): 1 + the perf_event fd last armed for it, 0 for none. Lets a
// handler on a thread find that thread's own event (pp_cpu_rearm_after_queued_signal). An entry of
// an exited thread may linger; readers check the fd against pp_cpu_perf_fds.
static int32_t *perf_fd_plus_one;

static uint32_t claim_value(uint64_t start_time) { return (uint32_t)(start_time % 0xffffffffull) + 1; }

int pp_cpu_claim_thread(int tid, uint64_t start_time) {
    uint32_t *table = __atomic_load_n(&claims, __ATOMIC_ACQUIRE);
    if (!table || tid <= 0 || (uint32_t)tid >= claim_count) return -1;
    uint32_t mine = claim_value(start_time);
    uint32_t seen = __atomic_load_n(&table[tid], __ATOMIC_ACQUIRE);
    while (seen != mine) {
        // Whatever else is there belongs to an earlier incarnation of this tid, which has exited.
        if (__atomic_compare_exchange_n(&table[tid], &seen, mine, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            return 1;
    }
    return 0;
}

void pp_cpu_unclaim_thread(int tid, uint64_t start_time) {
    uint32_t *table = __atomic_load_n(&claims, __ATOMIC_ACQUIRE);
    if (!table || tid <= 0 || (uint32_t)tid >= claim_count) return;
    uint32_t mine = claim_value(start_time);
    __atomic_compare_exchange_n(&table[tid], &mine, 0, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
}

void pp_cpu_claims_reset(void) {
    if (claims) madvise(claims, (size_t)claim_count * sizeof(uint32_t), MADV_DONTNEED);
    if (perf_fd_plus_one) madvise(perf_fd_plus_one, (size_t)claim_count * sizeof(int32_t), MADV_DONTNEED);
}

int pp_cpu_perf_fd_of_thread(int tid) {
    int32_t *table = __atomic_load_n(&perf_fd_plus_one, __ATOMIC_ACQUIRE);
    if (!table || tid <= 0 || (uint32_t)tid >= claim_count) return -1;
    return __atomic_load_n(&table[tid], __ATOMIC_ACQUIRE) - 1;
}

static uint32_t read_pid_max(void) {
    uint32_t value = 0;
    long fd = pp_syscall4(SYS_openat, AT_FDCWD, "/proc/sys/kernel/pid_max", O_RDONLY | O_CLOEXEC, 0);
    if (fd >= 0) {
        char text[32];
        long n = pp_syscall3(SYS_read, fd, text, sizeof text);
        pp_syscall1(SYS_close, fd);
        for (long i = 0; i < n && text[i] >= '0' && text[i] <= '9'; i++) value = value * 10 + (uint32_t)(text[i] - '0');
    }
    // The kernel's limit is 2^22; fall back to it if the file is unreadable.
    if (value == 0 || value > (1u << 22)) value = 1u << 22;
    return value + 1;
}

// ---- Threads armed by the listener: a bounded multi-producer, single-consumer queue -----------

#define STARTED_CAPACITY 1024

struct started_cell {
    uint64_t sequence;
    pp_cpu_started_thread item;
};

static struct started_cell started_cells[STARTED_CAPACITY];
static uint64_t started_enqueue;
static uint64_t started_dequeue;
static int started_ready;

static int push_started(const pp_cpu_started_thread *item) {
    uint64_t position = __atomic_load_n(&started_enqueue, __ATOMIC_RELAXED);
    for (;;) {
        struct started_cell *cell = &started_cells[position % STARTED_CAPACITY];
        uint64_t sequence = __atomic_load_n(&cell->sequence, __ATOMIC_ACQUIRE);
        int64_t difference = (int64_t)(sequence - position);
        if (difference == 0) {
            if (__atomic_compare_exchange_n(&started_enqueue, &position, position + 1, 1, __ATOMIC_RELAXED,
                                            __ATOMIC_RELAXED)) {
                cell->item = *item;
                __atomic_store_n(&cell->sequence, position + 1, __ATOMIC_RELEASE);
                return 1;
            }
        } else if (difference < 0) {
            return 0;  // full
        } else {
            position = __atomic_load_n(&started_enqueue, __ATOMIC_RELAXED);
        }
    }
}

int pp_cpu_take_started_thread(pp_cpu_started_thread *out) {
    if (!__atomic_load_n(&started_ready, __ATOMIC_ACQUIRE)) return 0;
    uint64_t position = started_dequeue;
    struct started_cell *cell = &started_cells[position % STARTED_CAPACITY];
    if (__atomic_load_n(&cell->sequence, __ATOMIC_ACQUIRE) != position + 1) return 0;
    *out = cell->item;
    __atomic_store_n(&cell->sequence, position + STARTED_CAPACITY, __ATOMIC_RELEASE);
    started_dequeue = position + 1;
    return 1;
}

int pp_cpu_sources_prepare(void) {
    if (!__atomic_load_n(&started_ready, __ATOMIC_ACQUIRE)) {
        for (uint64_t i = 0; i < STARTED_CAPACITY; i++) started_cells[i].sequence = i;
        __atomic_store_n(&started_ready, 1, __ATOMIC_RELEASE);
    }
    if (!claims) {
        uint32_t count = read_pid_max();
        // Claims and perf fds per tid; pages are committed only when touched.
        size_t bytes = (size_t)count * sizeof(uint32_t);
        void *memory = mmap(NULL, 2 * bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                            -1, 0);
        if (memory == MAP_FAILED) return -ENOMEM;
        claim_count = count;
        __atomic_store_n(&perf_fd_plus_one, (int32_t *)((char *)memory + bytes), __ATOMIC_RELEASE);
        __atomic_store_n(&claims, (uint32_t *)memory, __ATOMIC_RELEASE);
    }
    __builtin_memset(pp_cpu_perf_fds, 0, sizeof pp_cpu_perf_fds);
    __builtin_memset(pp_cpu_perf_first_period, 0, sizeof pp_cpu_perf_first_period);
    __atomic_store_n(&pp_cpu.perf_fds_open, 0, __ATOMIC_RELAXED);
    return 0;
}

// ---- Sources --------------------------------------------------------------------------------

static void fill_perf_attr(struct perf_event_attr *attr, int64_t first_period_ns) {
    __builtin_memset(attr, 0, sizeof *attr);
    attr->type = PERF_TYPE_SOFTWARE;
    attr->size = sizeof *attr;
    attr->config = PERF_COUNT_SW_CPU_CLOCK;
    attr->sample_period = (uint64_t)first_period_ns;
    attr->disabled = 1;
    // perf_event_paranoid <= 2 lets unprivileged processes observe their own threads in user space.
    attr->exclude_kernel = 1;
    attr->exclude_hv = 1;
}

static int arm_perf(int tid, pp_cpu_source *source) {
    if (__atomic_add_fetch(&pp_cpu.perf_fds_open, 1, __ATOMIC_RELAXED) > pp_cpu.perf_fd_limit) {
        __atomic_sub_fetch(&pp_cpu.perf_fds_open, 1, __ATOMIC_RELAXED);
        return -EMFILE;
    }
    struct perf_event_attr attr;
    fill_perf_attr(&attr, pp_cpu_random_first_period(pp_cpu.period_ns));
    long fd = pp_syscall5(SYS_perf_event_open, &attr, tid, -1, -1, PERF_FLAG_FD_CLOEXEC);
    if (fd < 0) {
        __atomic_sub_fetch(&pp_cpu.perf_fds_open, 1, __ATOMIC_RELAXED);
        return (int)fd;
    }
    long result = -EMFILE;
    if (fd < PP_CPU_MAX_PERF_FD) {
        // The overflow raises our signal on the thread itself (F_OWNER_TID), with si_fd set.
        struct f_owner_ex owner = {F_OWNER_TID, tid};
        result = pp_syscall3(SYS_fcntl, fd, F_SETOWN_EX, &owner);
        if (result == 0) result = pp_syscall3(SYS_fcntl, fd, F_SETSIG, pp_cpu.signo);
        long flags = result == 0 ? pp_syscall2(SYS_fcntl, fd, F_GETFL) : result;
        result = flags < 0 ? flags : pp_syscall3(SYS_fcntl, fd, F_SETFL, flags | O_ASYNC);
        if (result == 0) {
            pp_cpu_bit_set(pp_cpu_perf_first_period, (int)fd);
            pp_cpu_bit_set(pp_cpu_perf_fds, (int)fd);
            // Enabled for one overflow: the first period is random and may be as short as the
            // kernel's 10 us floor, which must not go on repeating until the handler replaces it
            // (inside a long first handler, or on a thread blocking the signal, that timer storm
            // starved the thread for seconds). The handler sets the real period and enables the
            // event for good (perf_continuous) or for one more overflow.
            result = pp_syscall3(SYS_ioctl, fd, PERF_EVENT_IOC_REFRESH, 1);
            if (result != 0) {
                pp_cpu_bit_clear(pp_cpu_perf_fds, (int)fd);
                pp_cpu_bit_clear(pp_cpu_perf_first_period, (int)fd);
            }
        }
    }
    if (result != 0) {
        pp_syscall1(SYS_close, fd);
        __atomic_sub_fetch(&pp_cpu.perf_fds_open, 1, __ATOMIC_RELAXED);
        return (int)result;
    }
    source->kind = PP_CPU_SOURCE_PERF;
    source->id = (int32_t)fd;
    int32_t *by_tid = __atomic_load_n(&perf_fd_plus_one, __ATOMIC_ACQUIRE);
    if (by_tid && tid > 0 && (uint32_t)tid < claim_count)
        __atomic_store_n(&by_tid[tid], (int32_t)fd + 1, __ATOMIC_RELEASE);
    return 0;
}

static void nanoseconds_to_timespec(int64_t ns, struct timespec *out) {
    out->tv_sec = ns / 1000000000;
    out->tv_nsec = ns % 1000000000;
}

static int arm_timer(int tid, pp_cpu_source *source) {
    struct kernel_sigevent event;
    __builtin_memset(&event, 0, sizeof event);
    event.value.sival_int = (int)pp_cpu.generation;
    event.signo = pp_cpu.signo;
    event.notify = SIGEV_THREAD_ID;
    event.tid = tid;
    // The CPU-time clock of any thread of the process: CPUCLOCK_PERTHREAD | CPUCLOCK_SCHED.
    int clock = (int)(((~(unsigned)tid) << 3) | 6u);
    int timer_id = -1;
    long result = pp_syscall3(SYS_timer_create, clock, &event, &timer_id);
    if (result != 0) return (int)result;
    struct itimerspec spec;
    nanoseconds_to_timespec(pp_cpu.period_ns, &spec.it_interval);
    // A random first expiry, so that a thread using less than a period still has its fair chance.
    nanoseconds_to_timespec(pp_cpu_random_first_period(pp_cpu.period_ns), &spec.it_value);
    result = pp_syscall4(SYS_timer_settime, timer_id, 0, &spec, NULL);
    if (result != 0) {
        pp_syscall1(SYS_timer_delete, timer_id);
        return (int)result;
    }
    source->kind = PP_CPU_SOURCE_TIMER;
    source->id = timer_id;
    return 0;
}

int pp_cpu_arm_thread(int tid, pp_cpu_source *source) {
    source->kind = PP_CPU_SOURCE_NONE;
    source->id = -1;
    const int engine = pp_cpu.engine;
    if (engine == PP_CPU_ENGINE_PERF) {
        int result = arm_perf(tid, source);
        if (result == 0 || result == -ESRCH) return result;
        __atomic_add_fetch(&pp_cpu.counters.perf_fallbacks, 1, __ATOMIC_RELAXED);
    }
    if (engine == PP_CPU_ENGINE_PERF || engine == PP_CPU_ENGINE_TIMER) return arm_timer(tid, source);
    return -EINVAL;
}

void pp_cpu_quiet_source(pp_cpu_source *source) {
    switch (source->kind) {
    case PP_CPU_SOURCE_PERF:
        pp_syscall3(SYS_ioctl, source->id, PERF_EVENT_IOC_DISABLE, 0);
        break;
    case PP_CPU_SOURCE_TIMER:
        pp_syscall1(SYS_timer_delete, source->id);
        source->kind = PP_CPU_SOURCE_NONE;
        source->id = -1;
        break;
    default:
        break;
    }
}

void pp_cpu_release_source(pp_cpu_source *source) {
    if (source->kind == PP_CPU_SOURCE_PERF) {
        // The handler stops accepting the fd before it is closed and perhaps reused.
        pp_cpu_bit_clear(pp_cpu_perf_fds, source->id);
        pp_cpu_bit_clear(pp_cpu_perf_first_period, source->id);
        pp_syscall1(SYS_close, source->id);
        __atomic_sub_fetch(&pp_cpu.perf_fds_open, 1, __ATOMIC_RELAXED);
    } else if (source->kind == PP_CPU_SOURCE_TIMER) {
        pp_syscall1(SYS_timer_delete, source->id);
    }
    source->kind = PP_CPU_SOURCE_NONE;
    source->id = -1;
}

// ---- The thread-start listener ----------------------------------------------------------------

void pp_cpu_thread_started(void) {
    __atomic_add_fetch(&pp_cpu.listeners_inflight, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&pp_cpu.running, __ATOMIC_SEQ_CST)) {
        int tid = (int)pp_syscall0(SYS_gettid);
        uint64_t start_time = pp_thread_start_time(tid);
        if (start_time != 0 && pp_cpu_claim_thread(tid, start_time) == 1) {
            pp_cpu_started_thread item;
            item.tid = tid;
            item.start_time = start_time;
            item.error = pp_cpu_arm_thread(tid, &item.source);
            if (!push_started(&item)) {
                // The reader cannot learn about it: undo, and let its next rescan arm the thread.
                pp_cpu_quiet_source(&item.source);
                pp_cpu_release_source(&item.source);
                pp_cpu_unclaim_thread(tid, start_time);
            }
        }
    }
    __atomic_sub_fetch(&pp_cpu.listeners_inflight, 1, __ATOMIC_SEQ_CST);
}

// ---- Process-wide timer and probing -----------------------------------------------------------

int pp_cpu_set_process_timer(int64_t period_ns, int64_t first_ns) {
    struct itimerval value;
    int64_t period_us = period_ns / 1000, first_us = first_ns / 1000;
    if (period_ns > 0 && period_us < 1) period_us = 1;
    if (period_ns > 0 && first_us < 1) first_us = 1;
    value.it_interval.tv_sec = period_us / 1000000;
    value.it_interval.tv_usec = period_us % 1000000;
    value.it_value.tv_sec = first_us / 1000000;
    value.it_value.tv_usec = first_us % 1000000;
    return (int)pp_syscall3(SYS_setitimer, ITIMER_PROF, &value, NULL);
}

int pp_cpu_arm_process_timer(void) {
    pp_cpu.process_cpu_origin_ns = pp_cpu_process_cpu_ns();
    __atomic_store_n(&pp_cpu.process_periods_credited, 0, __ATOMIC_RELAXED);
    return pp_cpu_set_process_timer(pp_cpu.period_ns, pp_cpu_random_first_period(pp_cpu.period_ns));
}

void pp_cpu_quiet_process_timer(void) { pp_cpu_set_process_timer(0, 0); }

int pp_cpu_probe_engine(int engine) {
    int tid = (int)pp_syscall0(SYS_gettid);
    switch (engine) {
    case PP_CPU_ENGINE_PERF: {
        struct perf_event_attr attr;
        fill_perf_attr(&attr, 10 * 1000 * 1000);
        long fd = pp_syscall5(SYS_perf_event_open, &attr, tid, -1, -1, PERF_FLAG_FD_CLOEXEC);
        if (fd < 0) return (int)fd;
        pp_syscall1(SYS_close, fd);
        return 0;
    }
    case PP_CPU_ENGINE_TIMER: {
        struct kernel_sigevent event;
        __builtin_memset(&event, 0, sizeof event);
        event.notify = SIGEV_NONE;
        int clock = (int)(((~(unsigned)tid) << 3) | 6u);
        int timer_id = -1;
        long result = pp_syscall3(SYS_timer_create, clock, &event, &timer_id);
        if (result != 0) return (int)result;
        pp_syscall1(SYS_timer_delete, timer_id);
        return 0;
    }
    case PP_CPU_ENGINE_ITIMER:
    case PP_CPU_ENGINE_MANUAL:
        return 0;
    default:
        return -EINVAL;
    }
}
