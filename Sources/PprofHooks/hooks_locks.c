// Interposed lock, condition and semaphore functions for the block and mutex profiles: pthread
// mutexes (NSLock, NSRecursiveLock, NIOLock, the Swift runtime, most C libraries), rwlocks,
// conditions (NSCondition), POSIX semaphores, and the contended slow path of Swift's
// Synchronization.Mutex.
//
// Every function here except the constructor `install_lock_hooks` (and the fork handler it
// registers) runs as a lock hook, possibly before constructors and re-entered from signal
// handlers: no allocation, no locks, errno preserved, and nothing but the real function,
// clock_gettime (vDSO) and the hook-safe recording of pp_contention.h. `resolve_next` (dlsym) runs
// in a hook only if a hook without a bound pointer is called before the constructor (the process
// is then still starting up; dlsym takes only the loader's recursive lock and does not allocate
// when it succeeds). In the preloaded shared library, the first call of each CPprof function goes
// through lazy PLT binding, which takes no lock.
//
// Uncontended paths stay as cheap as the functions they replace: a mutex lock peeks at the lock
// word and, if free, tail-calls the real lock; other locks are first tried with the real try-lock;
// an unlock inspects the lock word (mutexes) or a waiter counter (rwlocks) and, with no waiter,
// tail-calls the real unlock. Only waits are timed.
#include <dlfcn.h>
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "PprofHooks.h"
#include "pp_contention.h"

#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)

// Slow paths keep their frame (the stack skip counts it) and stay out of the hot code.
#define SLOW_PATH static __attribute__((noinline, cold, disable_tail_calls))

// glibc's own aliases of the lock functions (__pthread_mutex_lock…), which the hooks do not
// replace, bound by the dynamic linker at load time so the hooks can forward before any code has
// run. Since glibc 2.34 they exist only as compatibility symbols of the architecture's first glibc
// version, hence the explicit versions; weak, so a C library without them leaves them NULL (the
// hooks then resolve lazily). The constructor replaces them with dlsym(RTLD_NEXT) results, which
// respect other interposers.
#if defined(__x86_64__)
#define GLIBC_FIRST_VERSION "GLIBC_2.2.5"
#elif defined(__aarch64__)
#define GLIBC_FIRST_VERSION "GLIBC_2.17"
#endif
#ifdef GLIBC_FIRST_VERSION
#define GLIBC_ALIAS(type, local, name, parameters)                   \
    extern type local parameters __attribute__((weak));              \
    __asm__(".symver " #local ", " name "@" GLIBC_FIRST_VERSION)
#define GLIBC_ALIAS_OR_NULL(local) local
#else
#define GLIBC_ALIAS(type, local, name, parameters) extern type local parameters __attribute__((weak))
#define GLIBC_ALIAS_OR_NULL(local) NULL
#endif
GLIBC_ALIAS(int, glibc_mutex_lock, "__pthread_mutex_lock", (pthread_mutex_t *));
GLIBC_ALIAS(int, glibc_mutex_trylock, "__pthread_mutex_trylock", (pthread_mutex_t *));
GLIBC_ALIAS(int, glibc_mutex_unlock, "__pthread_mutex_unlock", (pthread_mutex_t *));
GLIBC_ALIAS(int, glibc_rwlock_rdlock, "__pthread_rwlock_rdlock", (pthread_rwlock_t *));
GLIBC_ALIAS(int, glibc_rwlock_wrlock, "__pthread_rwlock_wrlock", (pthread_rwlock_t *));
GLIBC_ALIAS(int, glibc_rwlock_tryrdlock, "__pthread_rwlock_tryrdlock", (pthread_rwlock_t *));
GLIBC_ALIAS(int, glibc_rwlock_trywrlock, "__pthread_rwlock_trywrlock", (pthread_rwlock_t *));
GLIBC_ALIAS(int, glibc_rwlock_unlock, "__pthread_rwlock_unlock", (pthread_rwlock_t *));

// Synchronization.Mutex on Linux (stdlib/public/Synchronization/Mutex/LinuxImpl.swift): the word
// holds 0 or the owner's TID (| FUTEX_WAITERS); `_lock()` and `_unlock()` are inlined into clients
// and call these only when the compare-and-swap fails, i.e. only under contention. Swift calling
// convention: `_lockSlow(_ owner: UInt32)` takes the owner TID as its argument and the handle (the
// address of the lock word) as `self` in the swiftself register (r13 / x20), as the disassembly of
// libswiftSynchronization.so shows.
#define SWIFT_LOCK_SLOW "$s15Synchronization12_MutexHandleV9_lockSlowyys6UInt32VF"
#define SWIFT_UNLOCK_SLOW "$s15Synchronization12_MutexHandleV11_unlockSlowyyF"
#if __has_attribute(swiftcall)
#define HAVE_SWIFT_MUTEX_HOOKS 1
typedef __attribute__((swiftcall)) void (*swift_lock_slow_fn)(uint32_t owner,
                                                              void *__attribute__((swift_context)) handle);
typedef __attribute__((swiftcall)) void (*swift_unlock_slow_fn)(void *__attribute__((swift_context)) handle);
#endif

// The real functions. Loaded with acquire, stored once by the constructor or a lazy resolution.
static struct {
    int (*mutex_lock)(pthread_mutex_t *);
    int (*mutex_trylock)(pthread_mutex_t *);
    int (*mutex_unlock)(pthread_mutex_t *);
    int (*mutex_timedlock)(pthread_mutex_t *, const struct timespec *);
    int (*mutex_clocklock)(pthread_mutex_t *, clockid_t, const struct timespec *);
    int (*rwlock_rdlock)(pthread_rwlock_t *);
    int (*rwlock_wrlock)(pthread_rwlock_t *);
    int (*rwlock_tryrdlock)(pthread_rwlock_t *);
    int (*rwlock_trywrlock)(pthread_rwlock_t *);
    int (*rwlock_unlock)(pthread_rwlock_t *);
    int (*rwlock_timedrdlock)(pthread_rwlock_t *, const struct timespec *);
    int (*rwlock_timedwrlock)(pthread_rwlock_t *, const struct timespec *);
    int (*rwlock_clockrdlock)(pthread_rwlock_t *, clockid_t, const struct timespec *);
    int (*rwlock_clockwrlock)(pthread_rwlock_t *, clockid_t, const struct timespec *);
    int (*cond_wait)(pthread_cond_t *, pthread_mutex_t *);
    int (*cond_timedwait)(pthread_cond_t *, pthread_mutex_t *, const struct timespec *);
    int (*cond_clockwait)(pthread_cond_t *, pthread_mutex_t *, clockid_t, const struct timespec *);
    int (*sem_wait)(sem_t *);
    int (*sem_trywait)(sem_t *);
    int (*sem_timedwait)(sem_t *, const struct timespec *);
    int (*sem_clockwait)(sem_t *, clockid_t, const struct timespec *);
#if HAVE_SWIFT_MUTEX_HOOKS
    swift_lock_slow_fn swift_lock_slow;
    swift_unlock_slow_fn swift_unlock_slow;
#endif
} real = {
    .mutex_lock = GLIBC_ALIAS_OR_NULL(glibc_mutex_lock),
    .mutex_trylock = GLIBC_ALIAS_OR_NULL(glibc_mutex_trylock),
    .mutex_unlock = GLIBC_ALIAS_OR_NULL(glibc_mutex_unlock),
    .rwlock_rdlock = GLIBC_ALIAS_OR_NULL(glibc_rwlock_rdlock),
    .rwlock_wrlock = GLIBC_ALIAS_OR_NULL(glibc_rwlock_wrlock),
    .rwlock_tryrdlock = GLIBC_ALIAS_OR_NULL(glibc_rwlock_tryrdlock),
    .rwlock_trywrlock = GLIBC_ALIAS_OR_NULL(glibc_rwlock_trywrlock),
    .rwlock_unlock = GLIBC_ALIAS_OR_NULL(glibc_rwlock_unlock),
};

// The definition that comes after ours in symbol lookup order (libc's, or another interposer's).
// Condition functions exist in two versions on x86_64; the current one is GLIBC_2.3.2.
static void *resolve_next(const char *name, const char *version) {
    void *function = version ? dlvsym(RTLD_NEXT, name, version) : NULL;
    if (!function) function = dlsym(RTLD_NEXT, name);
    return function;
}

// The real function for `field`, resolving it now if the constructor has not run yet. NULL only
// if the C library lacks the function altogether.
#define REAL(field, name, version)                                                         \
    ({                                                                                     \
        __typeof__(real.field) function_ = __atomic_load_n(&real.field, __ATOMIC_ACQUIRE); \
        if (UNLIKELY(!function_)) {                                                        \
            function_ = (__typeof__(function_))resolve_next(name, version);                \
            if (function_) __atomic_store_n(&real.field, function_, __ATOMIC_RELEASE);     \
        }                                                                                  \
        function_;                                                                         \
    })

#define REAL_MUTEX_LOCK REAL(mutex_lock, "pthread_mutex_lock", NULL)
#define REAL_MUTEX_TRYLOCK REAL(mutex_trylock, "pthread_mutex_trylock", NULL)
#define REAL_MUTEX_UNLOCK REAL(mutex_unlock, "pthread_mutex_unlock", NULL)
#define REAL_RWLOCK_UNLOCK REAL(rwlock_unlock, "pthread_rwlock_unlock", NULL)
#define COND_VERSION "GLIBC_2.3.2"

// Tracked waiters of rwlocks: an rwlock unlock looks for waiters to charge only while nonzero
// (glibc's rwlock word is too intricate to read reliably).
static uint64_t rwlock_waiters;

// Every blocking operation the hooks forward, so that one slow path serves them all.
enum wait_op {
    OP_MUTEX_LOCK,
    OP_MUTEX_TIMEDLOCK,
    OP_MUTEX_CLOCKLOCK,
    OP_RWLOCK_RDLOCK,
    OP_RWLOCK_WRLOCK,
    OP_RWLOCK_TIMEDRDLOCK,
    OP_RWLOCK_TIMEDWRLOCK,
    OP_RWLOCK_CLOCKRDLOCK,
    OP_RWLOCK_CLOCKWRLOCK,
};

static int is_rwlock_op(enum wait_op op) { return op >= OP_RWLOCK_RDLOCK; }

// Calls the real blocking function; EINVAL if the C library lacks it (cannot happen with glibc).
static int call_real_lock(enum wait_op op, void *lock, clockid_t clock, const struct timespec *abstime) {
    int (*m1)(pthread_mutex_t *) = NULL;
    int (*m2)(pthread_mutex_t *, const struct timespec *) = NULL;
    int (*m3)(pthread_mutex_t *, clockid_t, const struct timespec *) = NULL;
    int (*r1)(pthread_rwlock_t *) = NULL;
    int (*r2)(pthread_rwlock_t *, const struct timespec *) = NULL;
    int (*r3)(pthread_rwlock_t *, clockid_t, const struct timespec *) = NULL;
    switch (op) {
    case OP_MUTEX_LOCK: m1 = REAL_MUTEX_LOCK; return m1 ? m1(lock) : EINVAL;
    case OP_MUTEX_TIMEDLOCK:
        m2 = REAL(mutex_timedlock, "pthread_mutex_timedlock", NULL);
        return m2 ? m2(lock, abstime) : EINVAL;
    case OP_MUTEX_CLOCKLOCK:
        m3 = REAL(mutex_clocklock, "pthread_mutex_clocklock", NULL);
        return m3 ? m3(lock, clock, abstime) : EINVAL;
    case OP_RWLOCK_RDLOCK: r1 = REAL(rwlock_rdlock, "pthread_rwlock_rdlock", NULL); return r1 ? r1(lock) : EINVAL;
    case OP_RWLOCK_WRLOCK: r1 = REAL(rwlock_wrlock, "pthread_rwlock_wrlock", NULL); return r1 ? r1(lock) : EINVAL;
    case OP_RWLOCK_TIMEDRDLOCK:
        r2 = REAL(rwlock_timedrdlock, "pthread_rwlock_timedrdlock", NULL);
        return r2 ? r2(lock, abstime) : EINVAL;
    case OP_RWLOCK_TIMEDWRLOCK:
        r2 = REAL(rwlock_timedwrlock, "pthread_rwlock_timedwrlock", NULL);
        return r2 ? r2(lock, abstime) : EINVAL;
    case OP_RWLOCK_CLOCKRDLOCK:
        r3 = REAL(rwlock_clockrdlock, "pthread_rwlock_clockrdlock", NULL);
        return r3 ? r3(lock, clock, abstime) : EINVAL;
    case OP_RWLOCK_CLOCKWRLOCK:
        r3 = REAL(rwlock_clockwrlock, "pthread_rwlock_clockwrlock", NULL);
        return r3 ? r3(lock, clock, abstime) : EINVAL;
    }
    return EINVAL;
}

// Calls the real try-lock of a mutex (EBUSY if the C library lacks it).
static int try_real_mutex(pthread_mutex_t *mutex) {
    int (*trylock)(pthread_mutex_t *) = REAL_MUTEX_TRYLOCK;
    return trylock ? trylock(mutex) : EBUSY;
}

// A lock that was busy: wait for it with the real function, timing the wait (block profile) and
// registering as a waiter so that the unlocker is charged for it (mutex profile). With
// `try_mutex_first`, a mutex that can be had at once (released meanwhile, or recursive) is taken
// untimed. The frame of the public hook that called this is the leaf of the recorded stack.
SLOW_PATH void wait_for_lock(enum wait_op op, void *lock, clockid_t clock, const struct timespec *abstime,
                             int try_mutex_first, int *result) {
    if (try_mutex_first) {
        int outcome = try_real_mutex(lock);
        if (outcome != EBUSY) {
            *result = outcome;
            return;
        }
    }
    int block_on = pp_contention_block_rate() > 0;
    int mutex_on = pp_contention_mutex_fraction() > 0;
    if (!block_on && !mutex_on) {
        *result = call_real_lock(op, lock, clock, abstime);
        return;
    }
    int saved_errno = errno;
    uint64_t start = pp_contention_now();
    uint32_t token = mutex_on ? pp_waiter_enter(pp_waiter_table_shared(), lock, start) : 0;
    if (token && is_rwlock_op(op)) __atomic_add_fetch(&rwlock_waiters, 1, __ATOMIC_SEQ_CST);
    errno = saved_errno;
    int outcome = call_real_lock(op, lock, clock, abstime);
    saved_errno = errno;
    uint64_t end = pp_contention_now();
    if (token) {
        pp_waiter_leave(pp_waiter_table_shared(), token);
        if (is_rwlock_op(op)) __atomic_sub_fetch(&rwlock_waiters, 1, __ATOMIC_SEQ_CST);
    }
    // Time spent waiting counts whether the lock was acquired or the wait timed out.
    if (block_on && (outcome == 0 || outcome == ETIMEDOUT || outcome == EOWNERDEAD))
        pp_contention_block_event((int64_t)(end - start), 1);
    errno = saved_errno;
    *result = outcome;
}

// An unlock with waiters: charge the waiting time since the previous charge to this unlock. The
// charge is taken while still holding the lock (so no waiter can leave in between), the event is
// recorded after releasing it.
SLOW_PATH void unlock_with_waiters(void *lock, int is_rwlock, int *result) {
    int64_t charge = 0;
    int saved_errno = errno;
    if (pp_contention_mutex_fraction() > 0) charge = pp_waiter_charge(pp_waiter_table_shared(), lock, pp_contention_now());
    errno = saved_errno;
    int (*unlock_mutex)(pthread_mutex_t *) = is_rwlock ? NULL : REAL_MUTEX_UNLOCK;
    int (*unlock_rwlock)(pthread_rwlock_t *) = is_rwlock ? REAL_RWLOCK_UNLOCK : NULL;
    int outcome = is_rwlock ? (unlock_rwlock ? unlock_rwlock(lock) : EINVAL)
                            : (unlock_mutex ? unlock_mutex(lock) : EINVAL);
    saved_errno = errno;
    if (outcome == 0 && charge > 0) pp_contention_mutex_event(charge, 1);
    errno = saved_errno;
    *result = outcome;
}

// Whether glibc's mutex word says a thread may sleep on it: 2 for normal, recursive, error-checking
// and adaptive mutexes (in the low bits for priority-protected ones, whose high bits hold the
// ceiling), FUTEX_WAITERS for priority-inheriting and robust ones (whose word is the owner's TID).
// A false "yes" only costs a look at the waiter table.
static inline int mutex_may_have_waiters(const pthread_mutex_t *mutex) {
    unsigned word = (unsigned)__atomic_load_n(&mutex->__data.__lock, __ATOMIC_RELAXED);
    return (word & FUTEX_WAITERS) != 0 || (word & 0x7ffff) == 2;
}

// --- pthread mutexes ---

// glibc's try-lock costs about twice its lock (a dispatch on the mutex kind, elision checks), far
// over the budget of the uncontended path. So the hooks peek at the lock word instead: 0 means
// unlocked for every mutex kind, and then the real lock is called directly (a tail call) and almost
// always succeeds at once. Only a nonzero word (held, or a priority-protected mutex's ceiling)
// takes the slow path, which tries the real try-lock (a recursive or priority-protected mutex may
// still be acquired at once) before timing the wait. A lock taken by another thread in the few
// instructions between the peek and the real lock's compare-and-swap is waited for untimed; that
// window is a few nanoseconds, so such misses are rare even under heavy contention.
static inline int mutex_looks_free(const pthread_mutex_t *mutex) {
    return __atomic_load_n(&mutex->__data.__lock, __ATOMIC_RELAXED) == 0;
}

// The fast paths read the bound pointer directly; an unbound one (before the constructor, which
// needs no speed) goes through the slow path, which binds it.
#define BOUND(field) __atomic_load_n(&real.field, __ATOMIC_ACQUIRE)

int pthread_mutex_lock(pthread_mutex_t *mutex) {
    int (*lock)(pthread_mutex_t *) = BOUND(mutex_lock);
    if (LIKELY(lock != NULL && mutex_looks_free(mutex))) return lock(mutex);
    int result;
    wait_for_lock(OP_MUTEX_LOCK, mutex, 0, NULL, 1, &result);
    return result;
}

int pthread_mutex_timedlock(pthread_mutex_t *mutex, const struct timespec *abstime) {
    int result;
    if (LIKELY(mutex_looks_free(mutex))) return call_real_lock(OP_MUTEX_TIMEDLOCK, mutex, 0, abstime);
    wait_for_lock(OP_MUTEX_TIMEDLOCK, mutex, 0, abstime, 1, &result);
    return result;
}

int pthread_mutex_clocklock(pthread_mutex_t *mutex, clockid_t clock, const struct timespec *abstime) {
    int result;
    if (LIKELY(mutex_looks_free(mutex))) return call_real_lock(OP_MUTEX_CLOCKLOCK, mutex, clock, abstime);
    wait_for_lock(OP_MUTEX_CLOCKLOCK, mutex, clock, abstime, 1, &result);
    return result;
}

int pthread_mutex_unlock(pthread_mutex_t *mutex) {
    int (*unlock)(pthread_mutex_t *) = BOUND(mutex_unlock);
    if (LIKELY(unlock != NULL && !mutex_may_have_waiters(mutex))) return unlock(mutex);
    int result;
    unlock_with_waiters(mutex, 0, &result);
    return result;
}

// --- pthread rwlocks ---

#define RWLOCK_HOOK(try_field, try_name, op, ...)                                   \
    {                                                                                     \
        int (*try_)(pthread_rwlock_t *) = REAL(try_field, try_name, NULL);                \
        int result = try_ ? try_(rwlock) : EBUSY;                                         \
        if (LIKELY(result != EBUSY)) return result;                                       \
        wait_for_lock(op, rwlock, __VA_ARGS__, 0, &result);                                  \
        return result;                                                                    \
    }

int pthread_rwlock_rdlock(pthread_rwlock_t *rwlock)
    RWLOCK_HOOK(rwlock_tryrdlock, "pthread_rwlock_tryrdlock", OP_RWLOCK_RDLOCK, 0, NULL)

int pthread_rwlock_wrlock(pthread_rwlock_t *rwlock)
    RWLOCK_HOOK(rwlock_trywrlock, "pthread_rwlock_trywrlock", OP_RWLOCK_WRLOCK, 0, NULL)

int pthread_rwlock_timedrdlock(pthread_rwlock_t *rwlock, const struct timespec *abstime)
    RWLOCK_HOOK(rwlock_tryrdlock, "pthread_rwlock_tryrdlock", OP_RWLOCK_TIMEDRDLOCK, 0, abstime)

int pthread_rwlock_timedwrlock(pthread_rwlock_t *rwlock, const struct timespec *abstime)
    RWLOCK_HOOK(rwlock_trywrlock, "pthread_rwlock_trywrlock", OP_RWLOCK_TIMEDWRLOCK, 0, abstime)

int pthread_rwlock_clockrdlock(pthread_rwlock_t *rwlock, clockid_t clock, const struct timespec *abstime)
    RWLOCK_HOOK(rwlock_tryrdlock, "pthread_rwlock_tryrdlock", OP_RWLOCK_CLOCKRDLOCK, clock, abstime)

int pthread_rwlock_clockwrlock(pthread_rwlock_t *rwlock, clockid_t clock, const struct timespec *abstime)
    RWLOCK_HOOK(rwlock_trywrlock, "pthread_rwlock_trywrlock", OP_RWLOCK_CLOCKWRLOCK, clock, abstime)

int pthread_rwlock_unlock(pthread_rwlock_t *rwlock) {
    int (*unlock)(pthread_rwlock_t *) = BOUND(rwlock_unlock);
    if (LIKELY(unlock != NULL && __atomic_load_n(&rwlock_waiters, __ATOMIC_RELAXED) == 0)) return unlock(rwlock);
    int result;
    unlock_with_waiters(rwlock, 1, &result);
    return result;
}

// --- Conditions: always a wait (block profile); the implicit unlock of the mutex is an unlock
// like any other (mutex profile), as Go's sync.Cond.Wait calls L.Unlock. ---

enum cond_op { OP_COND_WAIT, OP_COND_TIMEDWAIT, OP_COND_CLOCKWAIT };

static int call_real_cond(enum cond_op op, pthread_cond_t *cond, pthread_mutex_t *mutex, clockid_t clock,
                          const struct timespec *abstime) {
    int (*wait)(pthread_cond_t *, pthread_mutex_t *) = NULL;
    int (*timed)(pthread_cond_t *, pthread_mutex_t *, const struct timespec *) = NULL;
    int (*clocked)(pthread_cond_t *, pthread_mutex_t *, clockid_t, const struct timespec *) = NULL;
    switch (op) {
    case OP_COND_WAIT: wait = REAL(cond_wait, "pthread_cond_wait", COND_VERSION); return wait ? wait(cond, mutex) : EINVAL;
    case OP_COND_TIMEDWAIT:
        timed = REAL(cond_timedwait, "pthread_cond_timedwait", COND_VERSION);
        return timed ? timed(cond, mutex, abstime) : EINVAL;
    case OP_COND_CLOCKWAIT:
        clocked = REAL(cond_clockwait, "pthread_cond_clockwait", NULL);
        return clocked ? clocked(cond, mutex, clock, abstime) : EINVAL;
    }
    return EINVAL;
}

SLOW_PATH void wait_for_condition(enum cond_op op, pthread_cond_t *cond, pthread_mutex_t *mutex, clockid_t clock,
                                  const struct timespec *abstime, int *result) {
    int saved_errno = errno;
    int block_on = pp_contention_block_rate() > 0;
    int64_t charge = 0;
    if (pp_contention_mutex_fraction() > 0 && mutex_may_have_waiters(mutex))
        charge = pp_waiter_charge(pp_waiter_table_shared(), mutex, pp_contention_now());
    // Recorded now, while still holding the mutex: the wait may never end.
    if (charge > 0) pp_contention_mutex_event(charge, 1);
    uint64_t start = block_on ? pp_contention_now() : 0;
    errno = saved_errno;
    int outcome = call_real_cond(op, cond, mutex, clock, abstime);
    saved_errno = errno;
    if (block_on && (outcome == 0 || outcome == ETIMEDOUT))
        pp_contention_block_event((int64_t)(pp_contention_now() - start), 1);
    errno = saved_errno;
    *result = outcome;
}

static inline int condition_hooks_on(void) {
    return pp_contention_block_rate() > 0 || pp_contention_mutex_fraction() > 0;
}

int pthread_cond_wait(pthread_cond_t *cond, pthread_mutex_t *mutex) {
    int result;
    if (LIKELY(!condition_hooks_on())) return call_real_cond(OP_COND_WAIT, cond, mutex, 0, NULL);
    wait_for_condition(OP_COND_WAIT, cond, mutex, 0, NULL, &result);
    return result;
}

int pthread_cond_timedwait(pthread_cond_t *cond, pthread_mutex_t *mutex, const struct timespec *abstime) {
    int result;
    if (LIKELY(!condition_hooks_on())) return call_real_cond(OP_COND_TIMEDWAIT, cond, mutex, 0, abstime);
    wait_for_condition(OP_COND_TIMEDWAIT, cond, mutex, 0, abstime, &result);
    return result;
}

int pthread_cond_clockwait(pthread_cond_t *cond, pthread_mutex_t *mutex, clockid_t clock,
                           const struct timespec *abstime) {
    int result;
    if (LIKELY(!condition_hooks_on())) return call_real_cond(OP_COND_CLOCKWAIT, cond, mutex, clock, abstime);
    wait_for_condition(OP_COND_CLOCKWAIT, cond, mutex, clock, abstime, &result);
    return result;
}

// --- Semaphores (block profile only): tried first, timed only when they would block. ---

enum sem_op { OP_SEM_WAIT, OP_SEM_TIMEDWAIT, OP_SEM_CLOCKWAIT };

static int call_real_sem(enum sem_op op, sem_t *sem, clockid_t clock, const struct timespec *abstime) {
    int (*wait)(sem_t *) = NULL;
    int (*timed)(sem_t *, const struct timespec *) = NULL;
    int (*clocked)(sem_t *, clockid_t, const struct timespec *) = NULL;
    switch (op) {
    case OP_SEM_WAIT: wait = REAL(sem_wait, "sem_wait", NULL); if (wait) return wait(sem); break;
    case OP_SEM_TIMEDWAIT:
        timed = REAL(sem_timedwait, "sem_timedwait", NULL);
        if (timed) return timed(sem, abstime);
        break;
    case OP_SEM_CLOCKWAIT:
        clocked = REAL(sem_clockwait, "sem_clockwait", NULL);
        if (clocked) return clocked(sem, clock, abstime);
        break;
    }
    errno = EINVAL;
    return -1;
}

SLOW_PATH void wait_for_semaphore(enum sem_op op, sem_t *sem, clockid_t clock, const struct timespec *abstime,
                                  int *result) {
    int saved_errno = errno;
    int (*trywait)(sem_t *) = REAL(sem_trywait, "sem_trywait", NULL);
    if (trywait && trywait(sem) == 0) {
        errno = saved_errno;
        *result = 0;
        return;
    }
    uint64_t start = pp_contention_now();
    errno = saved_errno;
    int outcome = call_real_sem(op, sem, clock, abstime);
    saved_errno = errno;
    // Interrupted and timed-out waits were waits too.
    if (outcome == 0 || saved_errno == ETIMEDOUT || saved_errno == EINTR)
        pp_contention_block_event((int64_t)(pp_contention_now() - start), 1);
    errno = saved_errno;
    *result = outcome;
}

int sem_wait(sem_t *sem) {
    int result;
    if (LIKELY(pp_contention_block_rate() <= 0)) return call_real_sem(OP_SEM_WAIT, sem, 0, NULL);
    wait_for_semaphore(OP_SEM_WAIT, sem, 0, NULL, &result);
    return result;
}

int sem_timedwait(sem_t *sem, const struct timespec *abstime) {
    int result;
    if (LIKELY(pp_contention_block_rate() <= 0)) return call_real_sem(OP_SEM_TIMEDWAIT, sem, 0, abstime);
    wait_for_semaphore(OP_SEM_TIMEDWAIT, sem, 0, abstime, &result);
    return result;
}

int sem_clockwait(sem_t *sem, clockid_t clock, const struct timespec *abstime) {
    int result;
    if (LIKELY(pp_contention_block_rate() <= 0)) return call_real_sem(OP_SEM_CLOCKWAIT, sem, clock, abstime);
    wait_for_semaphore(OP_SEM_CLOCKWAIT, sem, clock, abstime, &result);
    return result;
}

// --- Synchronization.Mutex ---

#if HAVE_SWIFT_MUTEX_HOOKS
// Only if libswiftSynchronization cannot be found (it is loaded whenever code that calls these
// runs, so this is defensive): the stdlib's algorithm on the priority-inheriting futex, which also
// traps on errors other than interruption (e.g. a thread locking a mutex it holds).
static void fallback_swift_lock(uint32_t owner, uint32_t *word) {
    for (;;) {
        uint32_t expected = 0;
        if (__atomic_compare_exchange_n(word, &expected, owner, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) return;
        if (syscall(SYS_futex, word, FUTEX_LOCK_PI_PRIVATE, 0, NULL) == 0) return;
        if (errno != EINTR && errno != EAGAIN) __builtin_trap();
    }
}

static void fallback_swift_unlock(uint32_t *word) {
    while (syscall(SYS_futex, word, FUTEX_UNLOCK_PI_PRIVATE) != 0) {
        if (errno != EINTR) __builtin_trap();
    }
}

// Both Synchronization hooks are weak definitions: with --static-swift-stdlib the library's own
// (strong) definitions are linked into the executable and win, instead of a duplicate-symbol
// error; Synchronization.Mutex is then not hooked, which the constructor detects and reports.
#define SWIFT_HOOK __attribute__((swiftcall, disable_tail_calls, noinline, weak))

// `_MutexHandle._lockSlow(_:)`: called only when the inlined compare-and-swap failed.
SWIFT_HOOK void pp_hook_swift_lock_slow(uint32_t owner, void *__attribute__((swift_context)) handle)
    __asm__(SWIFT_LOCK_SLOW);

SWIFT_HOOK void pp_hook_swift_lock_slow(
    uint32_t owner, void *__attribute__((swift_context)) handle) {
    int saved_errno = errno;
    swift_lock_slow_fn lock_slow = REAL(swift_lock_slow, SWIFT_LOCK_SLOW, NULL);
    int block_on = pp_contention_block_rate() > 0;
    int mutex_on = pp_contention_mutex_fraction() > 0;
    uint64_t start = block_on || mutex_on ? pp_contention_now() : 0;
    uint32_t token = mutex_on ? pp_waiter_enter(pp_waiter_table_shared(), handle, start) : 0;
    errno = saved_errno;
    if (lock_slow)
        lock_slow(owner, handle);
    else
        fallback_swift_lock(owner, handle);
    if (!block_on && !mutex_on) return;
    saved_errno = errno;
    uint64_t end = pp_contention_now();
    if (token) pp_waiter_leave(pp_waiter_table_shared(), token);
    if (block_on) pp_contention_block_event((int64_t)(end - start), 0);
    errno = saved_errno;
}

// `_MutexHandle._unlockSlow()`: called only when the word has FUTEX_WAITERS, i.e. with waiters.
SWIFT_HOOK void pp_hook_swift_unlock_slow(void *__attribute__((swift_context)) handle) __asm__(SWIFT_UNLOCK_SLOW);

SWIFT_HOOK void pp_hook_swift_unlock_slow(
    void *__attribute__((swift_context)) handle) {
    int saved_errno = errno;
    swift_unlock_slow_fn unlock_slow = REAL(swift_unlock_slow, SWIFT_UNLOCK_SLOW, NULL);
    int64_t charge = 0;
    if (pp_contention_mutex_fraction() > 0)
        charge = pp_waiter_charge(pp_waiter_table_shared(), handle, pp_contention_now());
    errno = saved_errno;
    if (unlock_slow)
        unlock_slow(handle);
    else
        fallback_swift_unlock(handle);
    if (charge <= 0) return;
    saved_errno = errno;
    pp_contention_mutex_event(charge, 0);
    errno = saved_errno;
}
#endif

// In a child after fork only the forking thread exists, and it was not waiting.
static void forget_waiters_in_child(void) {
    pp_waiter_table_reset(pp_waiter_table_shared());
    __atomic_store_n(&rwlock_waiters, 0, __ATOMIC_SEQ_CST);
}

// Runs before main (after the constructors of the shared libraries): binds every real function
// through dlsym(RTLD_NEXT) while nothing is contended, and binds clock_gettime's PLT slot, so no
// hook resolves anything later.
__attribute__((constructor(101))) static void install_lock_hooks(void) {
    int saved_errno = errno;
#define BIND(field, name, version)                                                                     \
    do {                                                                                              \
        void *function_ = resolve_next(name, version);                                                \
        if (function_) __atomic_store_n(&real.field, (__typeof__(real.field))function_, __ATOMIC_RELEASE); \
    } while (0)
    BIND(mutex_lock, "pthread_mutex_lock", NULL);
    BIND(mutex_trylock, "pthread_mutex_trylock", NULL);
    BIND(mutex_unlock, "pthread_mutex_unlock", NULL);
    BIND(mutex_timedlock, "pthread_mutex_timedlock", NULL);
    BIND(mutex_clocklock, "pthread_mutex_clocklock", NULL);
    BIND(rwlock_rdlock, "pthread_rwlock_rdlock", NULL);
    BIND(rwlock_wrlock, "pthread_rwlock_wrlock", NULL);
    BIND(rwlock_tryrdlock, "pthread_rwlock_tryrdlock", NULL);
    BIND(rwlock_trywrlock, "pthread_rwlock_trywrlock", NULL);
    BIND(rwlock_unlock, "pthread_rwlock_unlock", NULL);
    BIND(rwlock_timedrdlock, "pthread_rwlock_timedrdlock", NULL);
    BIND(rwlock_timedwrlock, "pthread_rwlock_timedwrlock", NULL);
    BIND(rwlock_clockrdlock, "pthread_rwlock_clockrdlock", NULL);
    BIND(rwlock_clockwrlock, "pthread_rwlock_clockwrlock", NULL);
    BIND(cond_wait, "pthread_cond_wait", COND_VERSION);
    BIND(cond_timedwait, "pthread_cond_timedwait", COND_VERSION);
    BIND(cond_clockwait, "pthread_cond_clockwait", NULL);
    BIND(sem_wait, "sem_wait", NULL);
    BIND(sem_trywait, "sem_trywait", NULL);
    BIND(sem_timedwait, "sem_timedwait", NULL);
    BIND(sem_clockwait, "sem_clockwait", NULL);
#if HAVE_SWIFT_MUTEX_HOOKS
    BIND(swift_lock_slow, SWIFT_LOCK_SLOW, NULL);
    BIND(swift_unlock_slow, SWIFT_UNLOCK_SLOW, NULL);
    // No later definition means no libswiftSynchronization.so: the library was linked statically,
    // its definitions won over ours, and Synchronization.Mutex cannot be hooked.
    pp_contention_set_swift_mutex_hooked(real.swift_lock_slow != NULL && real.swift_unlock_slow != NULL);
#else
    pp_contention_set_swift_mutex_hooked(0);
#endif
#undef BIND
    (void)pp_contention_now();
    pthread_atfork(NULL, NULL, forget_waiters_in_child);
    pp_contention_hooks_did_install();
    errno = saved_errno;
}
