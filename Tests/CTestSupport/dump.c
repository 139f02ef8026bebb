// Thread dumps from a forked child (the child has only the forking thread).
#define _GNU_SOURCE
#include <unistd.h>

#include "CTestSupport.h"
#include "pp_thread_dump.h"

int ctest_fork_and_dump(int timeout_ms) {
    pid_t child = fork();
    if (child < 0) return -1;
    if (child == 0) {
        // Only C from here: the child of a multithreaded process.
        static pp_thread_stack out;
        int32_t self = (int32_t)gettid();
        int result = pp_thread_dump(&self, 1, &out, 1, 100 * 1000 * 1000);
        _exit(result == 0 && out.status == PP_THREAD_SAMPLED && out.depth > 0 ? 0 : 3);
    }
    return ctest_wait_for_child(child, timeout_ms);
}
