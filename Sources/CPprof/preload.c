// Profiles written at exit by the LD_PRELOAD library. Nothing here runs in a handler or hook: the
// constructor runs when the image loads, the exit handler from exit().
#include <stdlib.h>

// Defined (in Swift, @_cdecl) only by the PprofPreload library; absent from every other image, where
// this reference stays null and nothing is registered.
extern void pprof_preload_exit(void) __attribute__((weak));

static void write_profiles_at_exit(void) { pprof_preload_exit(); }

// Registering is all that happens at load time: this image's Swift metadata may not be registered
// yet, so Swift code runs only at exit, after main returns or exit() is called.
__attribute__((constructor)) static void register_preload_exit(void) {
    if (pprof_preload_exit) atexit(write_profiles_at_exit);
}
