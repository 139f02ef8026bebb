// C++ demangling for the symbolizer. Nothing in this file runs in a signal handler or hook.
#include "pp_demangle.h"

#include <dlfcn.h>
#include <stdlib.h>

extern char *swift_demangle(const char *mangled, size_t length, char *output, size_t *outputSize,
                            uint32_t flags) __attribute__((weak));

char *pp_swift_demangle(const char *mangled, size_t length) {
    if (!swift_demangle) return NULL;
    return swift_demangle(mangled, length, NULL, NULL, 0);
}

typedef char *(*cxa_demangle_fn)(const char *, char *, size_t *, int *);

char *pp_cxx_demangle(const char *mangled) {
    static cxa_demangle_fn demangle;
    static int looked_up;
    if (!__atomic_load_n(&looked_up, __ATOMIC_ACQUIRE)) {
        demangle = (cxa_demangle_fn)dlsym(RTLD_DEFAULT, "__cxa_demangle");
        __atomic_store_n(&looked_up, 1, __ATOMIC_RELEASE);
    }
    if (!demangle) return NULL;
    int status = 0;
    char *result = demangle(mangled, NULL, NULL, &status);
    if (status != 0) {
        free(result);
        return NULL;
    }
    return result;
}
