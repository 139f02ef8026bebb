// Thread start notifications. pp_thread_events_notify_start runs inside the pthread_create hook
// (on the new thread); it only loads an atomic pointer and calls it.
#include <stddef.h>

#include "pp_thread_events.h"

static pp_thread_start_listener start_listener;
static int hooked;

void pp_thread_events_set_start_listener(pp_thread_start_listener listener) {
    __atomic_store_n(&start_listener, listener, __ATOMIC_RELEASE);
}

void pp_thread_events_notify_start(void) {
    pp_thread_start_listener listener = __atomic_load_n(&start_listener, __ATOMIC_ACQUIRE);
    if (listener) listener();
}

int pp_thread_events_hooked(void) { return __atomic_load_n(&hooked, __ATOMIC_ACQUIRE); }

void pp_thread_events_mark_hooked(void) { __atomic_store_n(&hooked, 1, __ATOMIC_RELEASE); }
