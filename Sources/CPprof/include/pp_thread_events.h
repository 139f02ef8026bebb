// Thread lifecycle events from the pthread_create hook (linked only with PprofHooks).
#ifndef PP_THREAD_EVENTS_H
#define PP_THREAD_EVENTS_H

// Runs on a newly created thread before its start routine. Must be async-signal-safe in spirit:
// it runs inside the hook, so no locks that the creating code might hold, and no Swift.
typedef void (*pp_thread_start_listener)(void);

// Sets the listener called when a thread starts (NULL to clear). One listener: the CPU profiler's.
void pp_thread_events_set_start_listener(pp_thread_start_listener listener);

// Called by the pthread_create hook on the new thread. Runs inside the hook.
void pp_thread_events_notify_start(void);

// 1 once the pthread_create hook has been linked in (PprofHooks), else 0.
int pp_thread_events_hooked(void);

// Called by PprofHooks' constructor to say the hook is linked.
void pp_thread_events_mark_hooked(void);

#endif
