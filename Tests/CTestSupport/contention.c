// A C library's use of a pthread mutex, for the contention tests. Not a hook; ordinary code.
#include "CTestSupport.h"

#include <pthread.h>
#include <sys/prctl.h>
#include <time.h>

static int64_t monotonic_ns(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
}

struct contention_run {
    pthread_mutex_t mutex;
    int iterations;
    int hold_us;
    int64_t waited_ns;
};

__attribute__((noinline)) void ctest_lock_site(pthread_mutex_t *mutex) {
    pthread_mutex_lock(mutex);
    __asm__ volatile("");  // keep the call a call, not a tail call
}

__attribute__((noinline)) void ctest_unlock_site(pthread_mutex_t *mutex) {
    pthread_mutex_unlock(mutex);
    __asm__ volatile("");
}

static void *contend(void *argument) {
    struct contention_run *run = argument;
    for (int i = 0; i < run->iterations; i++) {
        int64_t start = monotonic_ns();
        ctest_lock_site(&run->mutex);
        __atomic_add_fetch(&run->waited_ns, monotonic_ns() - start, __ATOMIC_RELAXED);
        struct timespec hold = {0, (long)run->hold_us * 1000};
        nanosleep(&hold, NULL);
        ctest_unlock_site(&run->mutex);
    }
    return NULL;
}

int64_t ctest_contend_pthread_mutex(int threads, int iterations, int hold_us) {
    struct contention_run run = {PTHREAD_MUTEX_INITIALIZER, iterations, hold_us, 0};
    pthread_t ids[64];
    if (threads > 64) threads = 64;
    int started = 0;
    for (; started < threads; started++)
        if (pthread_create(&ids[started], NULL, contend, &run) != 0) break;
    for (int i = 0; i < started; i++) pthread_join(ids[i], NULL);
    return run.waited_ns;
}

void ctest_precise_sleeps(void) { prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL); }
