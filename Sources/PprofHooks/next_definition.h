// The next definition of an interposed symbol after ours (libc's or the Swift runtime's), resolved
// once. Racing first calls resolve the same pointer. The first call takes the loader's lock in dlsym,
// so the constructors resolve before any hook can run inside a signal handler or a malloc.
#ifndef PPROF_NEXT_DEFINITION_H
#define PPROF_NEXT_DEFINITION_H

#include <dlfcn.h>

static inline void *pp_next_definition(void **resolved, const char *name) {
    void *function = __atomic_load_n(resolved, __ATOMIC_ACQUIRE);
    if (!function) {
        function = dlsym(RTLD_NEXT, name);
        if (function) __atomic_store_n(resolved, function, __ATOMIC_RELEASE);
    }
    return function;
}

#endif
