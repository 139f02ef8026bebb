// Claiming a signal for the profiler without stealing it from anyone else.
#ifndef PP_SIGNALS_H
#define PP_SIGNALS_H

#include <signal.h>

typedef void (*pp_signal_handler)(int signo, siginfo_t *info, void *context);

// Installs `handler` (SA_SIGINFO | SA_RESTART) on the first of `candidates` whose disposition is
// SIG_DFL or SIG_IGN, or that already runs `handler`. Returns the signal, or -1 if every candidate
// belongs to another handler. The handler stays installed for the life of the process (a stray
// late signal must never fall back to SIG_DFL and kill the process). Not for use in a handler.
int pp_signal_claim(const int *candidates, int count, pp_signal_handler handler);

// The process's real-time signals that glibc leaves to applications, as candidates for
// pp_signal_claim: writes up to `max` of them, highest first, and returns how many.
int pp_signal_realtime_candidates(int *out, int max);

#endif
