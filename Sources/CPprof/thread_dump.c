// Thread dumps. dump_handler runs as the signal handler on every dumped thread and is
// async-signal-safe (no allocation, no locks, raw system calls, errno preserved; it also calls
// pp_cpu_rearm_after_queued_signal of cpu_sampler.c and pp_profiler_work_active); everything else
// runs in the dumping thread, in ordinary code.
//
// Protocol: each request owns a slot of a static pool (never freed, so a late handler can never
// write into freed memory). A slot's state and generation share one atomic word; the signal
// carries (generation, slot), and a handler only writes after moving the slot from REQUESTED to
// WRITING *for its generation*, so an answer that arrives after its request was abandoned, or
// after the slot was reused, is ignored.
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "arch.h"
#include "cpu_internal.h"
#include "pp_labels.h"
#include "pp_profiler_work.h"
#include "pp_signals.h"
#include "pp_thread_dump.h"
#include "pp_unwind.h"

#define SLOT_COUNT 64
#define STATE_BITS 8
#define STATE_MASK ((1u << STATE_BITS) - 1)

enum { SLOT_FREE = 0, SLOT_REQUESTED = 1, SLOT_WRITING = 2, SLOT_DONE = 3 };

typedef struct dump_slot {
    // generation << STATE_BITS | state
    uint64_t word;
    uint32_t flags;
    int32_t syscall;
    int32_t in_syscall;
    uint64_t label_tag;
    int32_t depth;
    uintptr_t pcs[PP_THREAD_STACK_MAX];
} dump_slot;

static dump_slot slots[SLOT_COUNT];
// Incremented by every answer; the dumping thread sleeps on it (futex).
static uint32_t answers;
// Answers still to come before the dumping thread wants waking (it sets this before it sleeps):
// one wake-up per batch instead of one per answer. A count that is off (an answer raced with the
// setting, a late answer to an abandoned request) costs an early return or a sleep until the
// dumper's next check, never a lost answer: the dumper sleeps on `answers`, which every answer
// changes, with a timeout.
static int32_t wake_countdown;
static int32_t process_id;
static int dump_signal = -1;
static pthread_mutex_t dump_lock = PTHREAD_MUTEX_INITIALIZER;

static void dump_handler(int signo, siginfo_t *info, void *context) {
    int saved_errno = errno;
    if (info && context && info->si_code == SI_QUEUE && info->si_pid == __atomic_load_n(&process_id, __ATOMIC_RELAXED)) {
        uint64_t token = (uint64_t)(uintptr_t)info->si_value.sival_ptr;
        uint64_t index = token & STATE_MASK;
        uint64_t generation = token >> STATE_BITS;
        if (index < SLOT_COUNT) {
            dump_slot *slot = &slots[index];
            uint64_t expected = generation << STATE_BITS | SLOT_REQUESTED;
            if (__atomic_compare_exchange_n(&slot->word, &expected, generation << STATE_BITS | SLOT_WRITING, 0,
                                            __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
                unsigned flags = 0;
                slot->depth = pp_unwind_from_ucontext(context, slot->pcs, PP_THREAD_STACK_MAX, &flags);
                slot->flags = flags | (pp_profiler_work_active() ? PP_STACK_PROFILER : 0);
                long number;
                slot->in_syscall = pp_arch_interrupted_syscall(context, &number);
                slot->syscall = (int32_t)number;
                slot->label_tag = pp_labels_current();
                __atomic_store_n(&slot->word, generation << STATE_BITS | SLOT_DONE, __ATOMIC_RELEASE);
                __atomic_add_fetch(&answers, 1, __ATOMIC_RELEASE);
                if (__atomic_sub_fetch(&wake_countdown, 1, __ATOMIC_ACQ_REL) == 0) {
                    pp_syscall6(SYS_futex, (long)&answers, FUTEX_WAKE_PRIVATE, 1, 0, 0, 0);
                }
            }
        }
        // Answered or stale, this request was pending on the thread: revive a CPU-profiling perf
        // event whose overflow signal it may have displaced.
        pp_cpu_rearm_after_queued_signal(signo);
    }
    errno = saved_errno;
}

int pp_thread_dump_signal(void) { return __atomic_load_n(&dump_signal, __ATOMIC_ACQUIRE); }

// SIGPROF when the library's SIGPROF dispatcher can route queued signals to us: it is the only
// signal the threads of libdispatch and the Swift concurrency pool accept. Otherwise a real-time
// signal (and those threads show up as blocking it).
static int claim_signal(void) {
    if (dump_signal >= 0) return dump_signal;
    int claimed = pp_signal_claim_sigprof_queued(dump_handler);
    if (claimed < 0) {
        int candidates[64];
        int count = pp_signal_realtime_candidates(candidates, 64);
        claimed = pp_signal_claim(candidates, count, dump_handler);
    }
    if (claimed >= 0) __atomic_store_n(&dump_signal, claimed, __ATOMIC_RELEASE);
    return claimed;
}

static int64_t now_ns(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
}

// The bit of `signo` in the hexadecimal mask on line `key` of a /proc status text, or 0.
static int status_mask_bit(const char *text, const char *key, int signo) {
    const char *line = strstr(text, key);
    if (!line) return 0;
    unsigned long long mask = strtoull(line + strlen(key), NULL, 16);
    return (mask >> (signo - 1)) & 1;
}

// Whether thread `tid` blocks `signo`, from /proc/self/task/<tid>/status: 1 yes, 0 no, -1 gone.
// With `pending_too`, only a thread that blocks it and has it pending counts: a thread running our
// handler has the signal in SigBlk too (for the handler's duration), yet it is answering.
static int thread_blocks_signal(int32_t tid, int signo, int pending_too) {
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%d/status", (int)tid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    char text[4096];
    ssize_t length = read(fd, text, sizeof text - 1);
    close(fd);
    if (length <= 0) return -1;
    text[length] = 0;
    if (!status_mask_bit(text, "\nSigBlk:", signo)) return 0;
    return !pending_too || status_mask_bit(text, "\nSigPnd:", signo);
}

// Threads that blocked the signal in an earlier dump: checked before they are asked again, so
// that repeated dumps do not queue signal after signal on them.
#define KNOWN_BLOCKERS 64
static int32_t known_blockers[KNOWN_BLOCKERS];

static int is_known_blocker(int32_t tid) {
    for (int i = 0; i < KNOWN_BLOCKERS; i++)
        if (known_blockers[i] == tid) return 1;
    return 0;
}

static void remember_blocker(int32_t tid, int blocks) {
    for (int i = 0; i < KNOWN_BLOCKERS; i++) {
        if (known_blockers[i] == tid) {
            if (!blocks) known_blockers[i] = 0;
            return;
        }
    }
    if (!blocks) return;
    for (int i = 0; i < KNOWN_BLOCKERS; i++) {
        if (known_blockers[i] == 0) {
            known_blockers[i] = tid;
            return;
        }
    }
}

// Requests in flight: which output entry each slot answers, the signal's value, and when to check
// on its thread.
typedef struct request {
    int output;
    uint64_t token;
    int64_t check_at;
} request;

static long send_request(int32_t tid, int signo, uint64_t token, uid_t uid) {
    siginfo_t info;
    memset(&info, 0, sizeof info);
    info.si_signo = signo;
    info.si_code = SI_QUEUE;
    info.si_pid = process_id;
    info.si_uid = uid;
    info.si_value.sival_ptr = (void *)(uintptr_t)token;
    return pp_syscall4(SYS_rt_tgsigqueueinfo, process_id, tid, signo, &info);
}

// A request unanswered for this long is checked: has its thread exited or does it block the signal?
#define CHECK_AFTER_NS 2000000
#define CHECK_EVERY_NS 10000000

static void copy_answer(dump_slot *slot, pp_thread_stack *out) {
    out->status = PP_THREAD_SAMPLED;
    out->flags = slot->flags;
    out->syscall = slot->syscall;
    out->in_syscall = slot->in_syscall;
    out->label_tag = slot->label_tag;
    out->depth = slot->depth;
    memcpy(out->pcs, slot->pcs, sizeof(uintptr_t) * (size_t)slot->depth);
}

// Gives up a request. Returns 1 if the slot was released (possibly after taking a late answer).
static int abandon(dump_slot *slot, pp_thread_stack *out) {
    uint64_t word = __atomic_load_n(&slot->word, __ATOMIC_ACQUIRE);
    uint64_t generation = word >> STATE_BITS;
    uint64_t expected = generation << STATE_BITS | SLOT_REQUESTED;
    if (__atomic_compare_exchange_n(&slot->word, &expected, generation << STATE_BITS | SLOT_FREE, 0, __ATOMIC_ACQ_REL,
                                    __ATOMIC_ACQUIRE)) {
        return 1;
    }
    // The handler is writing right now: it finishes in microseconds unless its thread is stopped.
    for (int spin = 0; spin < 1000 && (expected & STATE_MASK) == SLOT_WRITING; spin++) {
        struct timespec pause = {0, 10000};
        nanosleep(&pause, NULL);
        expected = __atomic_load_n(&slot->word, __ATOMIC_ACQUIRE);
    }
    if ((expected & STATE_MASK) == SLOT_DONE) {
        copy_answer(slot, out);
        __atomic_store_n(&slot->word, generation << STATE_BITS | SLOT_FREE, __ATOMIC_RELEASE);
        return 1;
    }
    // Still writing: leave the slot out of service until its handler is done (a later dump then
    // reclaims it) rather than risk a torn answer.
    return 0;
}

// In the child of a fork only the forking thread exists: a dump that another thread was running
// left dump_lock held and slots that nobody will answer. Start over, or every dump there would hang.
static void reset_in_child(void) {
    pthread_mutex_init(&dump_lock, NULL);
    for (int i = 0; i < SLOT_COUNT; i++) {
        uint64_t word = __atomic_load_n(&slots[i].word, __ATOMIC_RELAXED);
        __atomic_store_n(&slots[i].word, (word >> STATE_BITS) << STATE_BITS | SLOT_FREE, __ATOMIC_RELAXED);
    }
}

__attribute__((noinline)) int pp_thread_dump(const int32_t *tids, int count, pp_thread_stack *out, int window,
                                             int64_t timeout_ns) {
    if (count <= 0) return 0;
    pthread_mutex_lock(&dump_lock);
    static int fork_handler_installed;
    if (!fork_handler_installed) fork_handler_installed = pthread_atfork(NULL, NULL, reset_in_child) == 0;
    int signo = claim_signal();
    if (signo < 0) {
        pthread_mutex_unlock(&dump_lock);
        return -1;
    }
    __atomic_store_n(&process_id, (int32_t)getpid(), __ATOMIC_RELAXED);
    int32_t self = (int32_t)pp_syscall0(SYS_gettid);
    uid_t uid = getuid();
    if (window < 1) window = 1;
    if (window > SLOT_COUNT) window = SLOT_COUNT;
    int64_t deadline = now_ns() + (timeout_ns > 0 ? timeout_ns : 0);
    static uint64_t next_generation = 1;

    for (int i = 0; i < count; i++) {
        out[i].tid = tids[i];
        out[i].status = PP_THREAD_NOT_ASKED;
        out[i].flags = 0;
        out[i].syscall = -1;
        out[i].in_syscall = 0;
        out[i].label_tag = 0;
        out[i].depth = 0;
    }
    request requests[SLOT_COUNT];
    for (int i = 0; i < SLOT_COUNT; i++) requests[i].output = -1;
    int next = 0;
    int in_flight = 0;

    for (;;) {
        // Ask more threads, up to the window.
        while (next < count && in_flight < window) {
            int slot_index = -1;
            for (int i = 0; i < SLOT_COUNT && slot_index < 0; i++) {
                if (requests[i].output >= 0) continue;
                uint64_t word = __atomic_load_n(&slots[i].word, __ATOMIC_ACQUIRE);
                // Answered after its request was abandoned mid-write: nobody waits for it any more.
                // (Without this, each such late answer would take a slot out of service for good.)
                if ((word & STATE_MASK) == SLOT_DONE &&
                    __atomic_compare_exchange_n(&slots[i].word, &word, (word >> STATE_BITS) << STATE_BITS | SLOT_FREE,
                                                0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
                    word = (word >> STATE_BITS) << STATE_BITS | SLOT_FREE;
                }
                if ((word & STATE_MASK) == SLOT_FREE) slot_index = i;
            }
            if (slot_index < 0) break;
            int output = next++;
            int32_t tid = tids[output];
            if (tid == self) {
                unsigned flags = 0;
                out[output].depth = pp_capture_stack(0, out[output].pcs, PP_THREAD_STACK_MAX, &flags);
                out[output].flags = flags | (pp_profiler_work_active() ? PP_STACK_PROFILER : 0);
                out[output].label_tag = pp_labels_current();
                out[output].status = PP_THREAD_SAMPLED;
                continue;
            }
            if (is_known_blocker(tid)) {
                int blocks = thread_blocks_signal(tid, signo, 0);
                remember_blocker(tid, blocks == 1);
                if (blocks != 0) {
                    out[output].status = blocks == 1 ? PP_THREAD_BLOCKS_SIGNAL : PP_THREAD_EXITED;
                    continue;
                }
            }
            dump_slot *slot = &slots[slot_index];
            uint64_t generation = next_generation++ & ((1ull << (64 - STATE_BITS)) - 1);
            __atomic_store_n(&slot->word, generation << STATE_BITS | SLOT_REQUESTED, __ATOMIC_RELEASE);
            uint64_t token = generation << STATE_BITS | (uint64_t)slot_index;
            long sent = send_request(tid, signo, token, uid);
            if (sent != 0) {
                __atomic_store_n(&slot->word, generation << STATE_BITS | SLOT_FREE, __ATOMIC_RELEASE);
                out[output].status = sent == -ESRCH ? PP_THREAD_EXITED : PP_THREAD_NOT_ASKED;
                continue;
            }
            requests[slot_index] = (request){output, token, now_ns() + CHECK_AFTER_NS};
            in_flight++;
        }
        if (in_flight == 0 && next >= count) break;

        // Take the answers in.
        uint32_t seen = __atomic_load_n(&answers, __ATOMIC_ACQUIRE);
        int progress = 0;
        int64_t now = now_ns();
        int64_t wake_at = deadline;
        for (int i = 0; i < SLOT_COUNT; i++) {
            request *pending = &requests[i];
            if (pending->output < 0) continue;
            dump_slot *slot = &slots[i];
            uint64_t word = __atomic_load_n(&slot->word, __ATOMIC_ACQUIRE);
            if ((word & STATE_MASK) == SLOT_DONE) {
                copy_answer(slot, &out[pending->output]);
                __atomic_store_n(&slot->word, (word >> STATE_BITS) << STATE_BITS | SLOT_FREE, __ATOMIC_RELEASE);
                pending->output = -1;
                in_flight--;
                progress = 1;
                continue;
            }
            // Slow to answer: gone, or blocking the signal? Then stop waiting for it.
            if (now >= pending->check_at) {
                pending->check_at = now + CHECK_EVERY_NS;
                int32_t tid = out[pending->output].tid;
                int blocks = thread_blocks_signal(tid, signo, 1);
                remember_blocker(tid, blocks == 1);
                if (blocks != 0 && abandon(slot, &out[pending->output])) {
                    if (out[pending->output].status != PP_THREAD_SAMPLED) {
                        out[pending->output].status = blocks == 1 ? PP_THREAD_BLOCKS_SIGNAL : PP_THREAD_EXITED;
                    }
                    pending->output = -1;
                    in_flight--;
                    progress = 1;
                    continue;
                }
                // Alive and accepting the signal, yet silent: a standard signal (SIGPROF) is not
                // queued twice, so ours may have merged with one already pending. Ask again; an
                // answer to either copy is taken once (the slot's state changes only once).
                // Real-time signals do queue: never pile them up.
                if (blocks == 0 && signo < SIGRTMIN) send_request(tid, signo, pending->token, uid);
            }
            if (pending->check_at < wake_at) wake_at = pending->check_at;
        }
        if (progress) continue;

        if (now >= deadline) {
            for (int i = 0; i < SLOT_COUNT; i++) {
                request *pending = &requests[i];
                if (pending->output < 0) continue;
                if (abandon(&slots[i], &out[pending->output])) {
                    if (out[pending->output].status != PP_THREAD_SAMPLED) out[pending->output].status = PP_THREAD_NO_ANSWER;
                } else {
                    out[pending->output].status = PP_THREAD_NO_ANSWER;
                }
                pending->output = -1;
            }
            break;  // threads never asked stay PP_THREAD_NOT_ASKED
        }
        int64_t wait = wake_at - now;
        if (wait < 100000) wait = 100000;
        struct timespec timeout = {(time_t)(wait / 1000000000), (long)(wait % 1000000000)};
        // Wake when every request in flight is answered, or, with more threads to ask, when half
        // the window is free again.
        int batch = next < count ? (in_flight + 1) / 2 : in_flight;
        __atomic_store_n(&wake_countdown, batch > 0 ? batch : 1, __ATOMIC_RELEASE);
        pp_syscall6(SYS_futex, (long)&answers, FUTEX_WAIT_PRIVATE, seen, (long)&timeout, 0, 0);
    }
    pthread_mutex_unlock(&dump_lock);
    return 0;
}
