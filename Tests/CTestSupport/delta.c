// Helpers for the delta-profile scenarios. Not a hook; ordinary code.
#include "CTestSupport.h"

#include <pthread.h>

int ctest_mutex_has_sleeper(pthread_mutex_t *mutex) {
    // glibc's lock word of a normal mutex is 2 once a thread found it held and went to sleep on it.
    return __atomic_load_n(&mutex->__data.__lock, __ATOMIC_ACQUIRE) == 2;
}
