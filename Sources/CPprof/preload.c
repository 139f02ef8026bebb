// Settings read at load time and profiles written at exit by the LD_PRELOAD library. Nothing here
// runs in a handler or hook: the constructor runs when the image loads, the exit handler from exit().
#include <stdlib.h>

#include "pp_contention.h"

// Defined (in Swift, @_cdecl) only by the PprofPreload library; absent from every other image, where
// this reference stays null and nothing here happens.
extern void pprof_preload_exit(void) __attribute__((weak));

static void write_profiles_at_exit(void) { pprof_preload_exit(); }

// An integer environment variable; 0 if unset or not a number.
static long long integer_setting(const char *name) {
    const char *text = getenv(name);
    if (!text || !*text) return 0;
    char *end = NULL;
    long long value = strtoll(text, &end, 10);
    return end && *end == '\0' ? value : 0;
}

// Only C runs at load time: this image's Swift metadata may not be registered yet, so Swift code
// runs only at exit, after main returns or exit() is called. (PPROF_HEAP_SAMPLE_RATE is read by
// the malloc hooks' own constructor, in executables that link PprofHooks as well.)
__attribute__((constructor)) static void configure_preload(void) {
    if (!pprof_preload_exit) return;
    long long block_rate = integer_setting("PPROF_BLOCK_PROFILE_RATE");
    if (block_rate > 0) pp_contention_set_block_rate(block_rate);
    long long mutex_fraction = integer_setting("PPROF_MUTEX_PROFILE_FRACTION");
    if (mutex_fraction > 0) pp_contention_set_mutex_fraction(mutex_fraction);
    atexit(write_profiles_at_exit);
}
