// Claiming a signal for the profiler without stealing it from anyone else.
#ifndef PP_SIGNALS_H
#define PP_SIGNALS_H

#include <signal.h>

typedef void (*pp_signal_handler)(int signo, siginfo_t *info, void *context);

// Installs `handler` (SA_SIGINFO | SA_RESTART) on the first of `candidates` whose disposition is
// SIG_DFL or SIG_IGN, or that already runs `handler` (SIGPROF: see the sharing below). Returns the
// signal, or -1 if every candidate belongs to another handler. The handler stays installed for the life of the process (a stray
// late signal must never fall back to SIG_DFL and kill the process). Not for use in a handler.
int pp_signal_claim(const int *candidates, int count, pp_signal_handler handler);

// SIGPROF is shared: it is the one signal libdispatch's worker threads (the Swift concurrency
// pool) leave unblocked, so both the CPU profiler and thread dumps need it. The library installs a
// dispatcher on SIGPROF (only if SIGPROF is free: never stolen). pp_signal_claim with SIGPROF among
// its candidates takes the dispatcher's main route (timers, perf events: everything but what the
// process queues to itself); pp_signal_claim_sigprof_queued takes the route of signals this process
// queues to its own threads (rt_tgsigqueueinfo, si_code SI_QUEUE), which thread dumps use.
// Returns SIGPROF, or -1 if SIGPROF belongs to a foreign handler or the route to another handler.
int pp_signal_claim_sigprof_queued(pp_signal_handler handler);

// The process's real-time signals that glibc leaves to applications, as candidates for
// pp_signal_claim: writes up to `max` of them, highest first, and returns how many.
int pp_signal_realtime_candidates(int *out, int max);

#endif
