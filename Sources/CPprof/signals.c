// Signal claiming. Nothing in this file runs in a signal handler.
#include <pthread.h>
#include <string.h>

#include "pp_signals.h"

static pthread_mutex_t claim_lock = PTHREAD_MUTEX_INITIALIZER;

int pp_signal_claim(const int *candidates, int count, pp_signal_handler handler) {
    int result = -1;
    pthread_mutex_lock(&claim_lock);
    for (int i = 0; i < count && result < 0; i++) {
        struct sigaction current;
        if (sigaction(candidates[i], NULL, &current) != 0) continue;
        if ((current.sa_flags & SA_SIGINFO) && current.sa_sigaction == handler) {
            result = candidates[i];
            break;
        }
        if (!(current.sa_flags & SA_SIGINFO) &&
            (current.sa_handler == SIG_DFL || current.sa_handler == SIG_IGN)) {
            struct sigaction action;
            memset(&action, 0, sizeof action);
            action.sa_sigaction = handler;
            action.sa_flags = SA_SIGINFO | SA_RESTART;
            sigemptyset(&action.sa_mask);
            if (sigaction(candidates[i], &action, NULL) == 0) result = candidates[i];
        }
    }
    pthread_mutex_unlock(&claim_lock);
    return result;
}

int pp_signal_realtime_candidates(int *out, int max) {
    int n = 0;
    for (int signo = SIGRTMAX; signo >= SIGRTMIN && n < max; signo--) out[n++] = signo;
    return n;
}
