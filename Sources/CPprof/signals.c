// Signal claiming and SIGPROF sharing. sigprof_dispatcher runs in the SIGPROF handler (it only
// loads two atomic pointers and calls one); nothing else in this file runs in a handler.
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "arch.h"
#include "pp_signals.h"

static pthread_mutex_t claim_lock = PTHREAD_MUTEX_INITIALIZER;

// SIGPROF is the one signal that libdispatch's worker threads (and so the Swift concurrency pool)
// leave unblocked besides the synchronous fault signals, so every profiler that must reach them
// uses it. The library owns SIGPROF through this dispatcher: queued signals sent by this process
// (si_code SI_QUEUE: thread dumps) go to the queued route, everything else (timers, perf events)
// to the route of whoever claimed SIGPROF with pp_signal_claim.
static pp_signal_handler sigprof_claimed_route;
static pp_signal_handler sigprof_queued_route;

static void sigprof_dispatcher(int signo, siginfo_t *info, void *context) {
    pp_signal_handler route;
    if (info && info->si_code == SI_QUEUE && info->si_pid == (pid_t)pp_syscall0(SYS_getpid)) {
        route = __atomic_load_n(&sigprof_queued_route, __ATOMIC_ACQUIRE);
    } else {
        route = __atomic_load_n(&sigprof_claimed_route, __ATOMIC_ACQUIRE);
    }
    if (route) route(signo, info, context);
}

static int is_handler(const struct sigaction *action, pp_signal_handler handler) {
    return (action->sa_flags & SA_SIGINFO) && action->sa_sigaction == handler;
}

static int is_free(const struct sigaction *action) {
    return !(action->sa_flags & SA_SIGINFO) && (action->sa_handler == SIG_DFL || action->sa_handler == SIG_IGN);
}

static int install(int signo, pp_signal_handler handler) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = handler;
    action.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&action.sa_mask);
    return sigaction(signo, &action, NULL) == 0;
}

// Takes `route` of SIGPROF for `handler` (installing the dispatcher if SIGPROF is free). Under
// claim_lock. Returns 1 on success.
static int claim_sigprof_route(pp_signal_handler *route, pp_signal_handler handler) {
    struct sigaction current;
    if (sigaction(SIGPROF, NULL, &current) != 0) return 0;
    if (!is_handler(&current, sigprof_dispatcher)) {
        if (!is_free(&current)) return 0;
        // Set the route first, so the first signal after installation finds it.
        pp_signal_handler previous = __atomic_load_n(route, __ATOMIC_ACQUIRE);
        if (previous && previous != handler) return 0;
        __atomic_store_n(route, handler, __ATOMIC_RELEASE);
        if (!install(SIGPROF, sigprof_dispatcher)) {
            __atomic_store_n(route, previous, __ATOMIC_RELEASE);
            return 0;
        }
        return 1;
    }
    pp_signal_handler previous = __atomic_load_n(route, __ATOMIC_ACQUIRE);
    if (previous && previous != handler) return 0;
    __atomic_store_n(route, handler, __ATOMIC_RELEASE);
    return 1;
}

int pp_signal_claim(const int *candidates, int count, pp_signal_handler handler) {
    int result = -1;
    pthread_mutex_lock(&claim_lock);
    for (int i = 0; i < count && result < 0; i++) {
        if (candidates[i] == SIGPROF) {
            if (claim_sigprof_route(&sigprof_claimed_route, handler)) result = SIGPROF;
            continue;
        }
        struct sigaction current;
        if (sigaction(candidates[i], NULL, &current) != 0) continue;
        if (is_handler(&current, handler)) {
            result = candidates[i];
            break;
        }
        if (is_free(&current) && install(candidates[i], handler)) result = candidates[i];
    }
    pthread_mutex_unlock(&claim_lock);
    return result;
}

int pp_signal_claim_sigprof_queued(pp_signal_handler handler) {
    pthread_mutex_lock(&claim_lock);
    int claimed = claim_sigprof_route(&sigprof_queued_route, handler);
    pthread_mutex_unlock(&claim_lock);
    return claimed ? SIGPROF : -1;
}

int pp_signal_realtime_candidates(int *out, int max) {
    int n = 0;
    for (int signo = SIGRTMAX; signo >= SIGRTMIN && n < max; signo--) out[n++] = signo;
    return n;
}
