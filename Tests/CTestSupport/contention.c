// A C library's use of a pthread mutex, for the contention tests. Not a hook; ordinary code.
#include "CTestSupport.h"

#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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

int ctest_fork_and_contend(int threads, int iterations, int hold_us, int timeout_ms) {
    pid_t child = fork();
    if (child < 0) return -1;
    if (child == 0) {
        ctest_contend_pthread_mutex(threads, iterations, hold_us);
        _exit(0);
    }
    return ctest_wait_for_child(child, timeout_ms);
}

int ctest_wait_for_child(int child, int timeout_ms) {
    int status = 0;
    for (int waited = 0; waited < timeout_ms; waited++) {
        if (waitpid(child, &status, WNOHANG) == child) return status;
        struct timespec millisecond = {0, 1000000};
        nanosleep(&millisecond, NULL);
    }
    kill(child, SIGKILL);
    waitpid(child, &status, 0);
    return -1;
}
