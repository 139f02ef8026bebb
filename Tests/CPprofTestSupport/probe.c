// A probe handler for label tests. probe_handler runs in a signal handler: it calls only
// pp_labels_current and pp_gettid, takes no lock and saves errno.
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "CPprof.h"
#include "CPprofTestSupport.h"

#define CAPACITY (1u << 18)

static pp_test_label_record records[CAPACITY];
static uint32_t complete[CAPACITY];
static uint64_t next_record;
static int probe_signal = -1;
static __thread int32_t thread_marker __attribute__((tls_model("initial-exec")));

static void probe_handler(int signo, siginfo_t *info, void *context) {
    (void)signo;
    (void)info;
    (void)context;
    int saved_errno = errno;
    uint64_t index = __atomic_fetch_add(&next_record, 1, __ATOMIC_RELAXED);
    if (index < CAPACITY) {
        records[index].marker = __atomic_load_n(&thread_marker, __ATOMIC_RELAXED);
        records[index].tag = pp_labels_current();
        records[index].tid = pp_gettid();
        __atomic_store_n(&complete[index], 1, __ATOMIC_RELEASE);
    }
    errno = saved_errno;
}

int pp_test_label_probe_install(void) {
    if (probe_signal > 0) return probe_signal;
    int candidates[64];
    int count = pp_signal_realtime_candidates(candidates, 64);
    probe_signal = pp_signal_claim(candidates, count, probe_handler);
    return probe_signal;
}

void pp_test_label_probe_unblock(void) {
    if (probe_signal <= 0) return;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, probe_signal);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}

void pp_test_label_marker_set(int32_t marker) {
    __atomic_store_n(&thread_marker, marker, __ATOMIC_RELAXED);
    // The handler runs on this thread: order the marker against the code that follows.
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
}

int pp_test_label_probe_signal(int32_t tid) {
    if (probe_signal <= 0) return -1;
    return (int)syscall(SYS_tgkill, getpid(), tid, probe_signal);
}

void pp_test_label_probe_reset(void) {
    uint64_t used = __atomic_load_n(&next_record, __ATOMIC_ACQUIRE);
    if (used > CAPACITY) used = CAPACITY;
    for (uint64_t i = 0; i < used; i++) __atomic_store_n(&complete[i], 0, __ATOMIC_RELAXED);
    __atomic_store_n(&next_record, 0, __ATOMIC_RELEASE);
}

uint64_t pp_test_label_probe_read(pp_test_label_record *out, uint64_t capacity, uint64_t *dropped) {
    uint64_t used = __atomic_load_n(&next_record, __ATOMIC_ACQUIRE);
    *dropped = used > CAPACITY ? used - CAPACITY : 0;
    if (used > CAPACITY) used = CAPACITY;
    uint64_t n = 0;
    for (uint64_t i = 0; i < used && n < capacity; i++) {
        if (__atomic_load_n(&complete[i], __ATOMIC_ACQUIRE)) out[n++] = records[i];
    }
    return n;
}
