// pthread_create interposition (threadcreate profile, thread start events). pthread_create and
// thread_start run inside the hook: they capture the creating stack with the async-signal-safe
// walker, record it in lock-free tables and call the real function; no locks of their own (only a
// pthread_create before this image's constructor resolves the real function with dlsym, which takes
// the loader's lock). They allocate the start arguments through the malloc hooks.
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include <CPprof.h>

#include "PprofHooks.h"
#include "next_definition.h"

typedef int (*pthread_create_function)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);

static void *real_pthread_create;

static pthread_create_function resolve_real_pthread_create(void) {
    return (pthread_create_function)pp_next_definition(&real_pthread_create, "pthread_create");
}

__attribute__((constructor)) static void install_thread_hook(void) {
    resolve_real_pthread_create();
    pp_thread_events_mark_hooked();
}

struct thread_start_arguments {
    void *(*routine)(void *);
    void *argument;
};

// Runs first on every new thread: tells listeners (the CPU profiler arms its timer here), then
// becomes the thread's start routine.
static void *thread_start(void *raw) {
    struct thread_start_arguments arguments = *(struct thread_start_arguments *)raw;
    free(raw);
    pp_thread_events_notify_start();
    return arguments.routine(arguments.argument);
}

#define CREATION_STACK_DEPTH 64

int pthread_create(pthread_t *thread, const pthread_attr_t *attributes, void *(*routine)(void *), void *argument) {
    pthread_create_function real = resolve_real_pthread_create();
    if (!real) return EAGAIN;
    // Skip our own frame: the stack starts in the code that called pthread_create.
    uintptr_t pcs[CREATION_STACK_DEPTH];
    unsigned flags = 0;
    int depth = pp_capture_stack(1, pcs, CREATION_STACK_DEPTH, &flags);
    if (pp_profiler_work_active()) flags |= PP_STACK_PROFILER;
    struct thread_start_arguments *arguments = malloc(sizeof *arguments);
    int result;
    if (arguments) {
        arguments->routine = routine;
        arguments->argument = argument;
        result = real(thread, attributes, thread_start, arguments);
        if (result != 0) free(arguments);
    } else {
        result = real(thread, attributes, routine, argument);
    }
    if (result == 0) pp_thread_create_record(pcs, depth, flags);
    return result;
}
