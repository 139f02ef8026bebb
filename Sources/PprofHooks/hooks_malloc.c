// The malloc family, interposed. Every function here except the constructor IS a hook: it runs
// wherever the process allocates (before main, in other constructors, during thread exit, in a
// forked child, nested in signal handlers that allocate). Each forwards to glibc's own entry points
// (__libc_malloc & co., exported by glibc for exactly this) and adds only what pp_heap.h provides:
// a thread-local countdown on allocation, a one-load filter on free, and the lock-free slow paths.
// No locks, no allocation of our own; errno as glibc leaves it (the slow path restores it). The
// obsolete valloc and pvalloc call glibc (and getpagesize) through ordinary PLT calls.
//
// Linked into an executable, these definitions come first in the symbol lookup of every DSO (the
// Swift runtime, Foundation, libc's own PLT calls), provided the executable exports them; most are
// exported because the shared libraries it links reference them, and the `used` attribute plus
// PprofHooks' linker settings keep the rest (see Package.swift and docs/heap.md).
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include "pp_heap.h"

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *pointer, size_t size);
extern void __libc_free(void *pointer);
extern void *__libc_memalign(size_t alignment, size_t size);
extern void *__libc_valloc(size_t size);
extern void *__libc_pvalloc(size_t size);

// glibc's entry points, called through pointers that the dynamic linker fills in at load time
// (read-only after relocation): one indirect jump, no PLT stub, no lazy binding inside a hook.
// `volatile` stops the compiler from turning them back into PLT calls.
static void *(*const volatile libc_malloc)(size_t) = __libc_malloc;
static void *(*const volatile libc_calloc)(size_t, size_t) = __libc_calloc;
static void *(*const volatile libc_realloc)(void *, size_t) = __libc_realloc;
static void (*const volatile libc_free)(void *) = __libc_free;
static void *(*const volatile libc_memalign)(size_t, size_t) = __libc_memalign;

#define HOOK __attribute__((visibility("default"), used, noinline))
#define LIKELY(condition) __builtin_expect(!!(condition), 1)
// Starts a slow branch: stops the compiler from merging it with the fast branch's tail call.
#define SLOW_PATH() __asm__ volatile("" ::: "memory")

// Every allocating hook has the same shape: on the fast path (countdown not exhausted) it tail-calls
// glibc, so an unsampled allocation costs one thread-local subtraction and a jump. Otherwise the
// hook itself allocates and then calls pp_heap_sample_slow directly: the slow path skips exactly
// its own frame and the hook's, so the stack starts at the hook's caller.

HOOK void *malloc(size_t size) {
    if (LIKELY(!pp_heap_countdown_expired(size))) return libc_malloc(size);
    SLOW_PATH();
    void *pointer = libc_malloc(size);
    pp_heap_sample_slow(pointer, size);
    return pointer;
}

// Before the memory goes back to glibc (which may hand its address to another thread at once), a
// sampled object leaves the live table. One filter load decides that most frees need nothing.
static inline __attribute__((always_inline)) void forget_if_sampled(void *pointer) {
    if (pointer && pp_heap_maybe_sampled(pointer)) {
        uint64_t key = pp_heap_take_live(pointer);
        if (key) pp_heap_count_free(key);
    }
}

HOOK void free(void *pointer) {
    forget_if_sampled(pointer);
    libc_free(pointer);
}

// Kept by glibc for old binaries only (cfree@GLIBC_2.2.5); must not bypass the live table.
HOOK void cfree(void *pointer) {
    forget_if_sampled(pointer);
    libc_free(pointer);
}

HOOK void *calloc(size_t count, size_t size) {
    size_t total;
    if (__builtin_mul_overflow(count, size, &total)) return libc_calloc(count, size);  // NULL, ENOMEM
    if (LIKELY(!pp_heap_countdown_expired(total))) return libc_calloc(count, size);
    SLOW_PATH();
    void *pointer = libc_calloc(count, size);
    pp_heap_sample_slow(pointer, total);
    return pointer;
}

// realloc is a free of the old object and an allocation of the new one. A sampled old object leaves
// the live table before glibc may release its address, and goes back if realloc fails.
static inline __attribute__((always_inline)) void *reallocate_slow(void *old, size_t size, int old_maybe_sampled) {
    uint64_t old_key = old_maybe_sampled ? pp_heap_take_live(old) : 0;
    void *pointer = libc_realloc(old, size);
    if (old_key) {
        if (pointer == NULL && size != 0)
            pp_heap_restore_live(old, old_key);  // failed: the old object is still the caller's
        else
            pp_heap_count_free(old_key);
    }
    return pointer;
}

HOOK void *realloc(void *old, size_t size) {
    int old_maybe_sampled = old && pp_heap_maybe_sampled(old);
    int expired = pp_heap_countdown_expired(size);
    if (LIKELY(!old_maybe_sampled && !expired)) return libc_realloc(old, size);
    SLOW_PATH();
    void *pointer = reallocate_slow(old, size, old_maybe_sampled);
    if (expired) pp_heap_sample_slow(pointer, size);
    return pointer;
}

HOOK void *reallocarray(void *old, size_t count, size_t size) {
    size_t total;
    if (__builtin_mul_overflow(count, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    int old_maybe_sampled = old && pp_heap_maybe_sampled(old);
    int expired = pp_heap_countdown_expired(total);
    if (LIKELY(!old_maybe_sampled && !expired)) return libc_realloc(old, total);
    SLOW_PATH();
    void *pointer = reallocate_slow(old, total, old_maybe_sampled);
    if (expired) pp_heap_sample_slow(pointer, total);
    return pointer;
}

HOOK void *memalign(size_t alignment, size_t size) {
    if (LIKELY(!pp_heap_countdown_expired(size))) return libc_memalign(alignment, size);
    SLOW_PATH();
    void *pointer = libc_memalign(alignment, size);
    pp_heap_sample_slow(pointer, size);
    return pointer;
}

// glibc 2.36 defines aligned_alloc as an alias of memalign.
HOOK void *aligned_alloc(size_t alignment, size_t size) {
    if (LIKELY(!pp_heap_countdown_expired(size))) return libc_memalign(alignment, size);
    SLOW_PATH();
    void *pointer = libc_memalign(alignment, size);
    pp_heap_sample_slow(pointer, size);
    return pointer;
}

HOOK int posix_memalign(void **result, size_t alignment, size_t size) {
    // POSIX: a power of two multiple of sizeof(void *); glibc checks the same before allocating.
    if (alignment % sizeof(void *) != 0 || alignment == 0 || (alignment & (alignment - 1)) != 0) return EINVAL;
    int saved_errno = errno;
    void *pointer = libc_memalign(alignment, size);
    errno = saved_errno;
    if (!pointer) return ENOMEM;
    if (pp_heap_countdown_expired(size)) pp_heap_sample_slow(pointer, size);
    *result = pointer;
    return 0;
}

HOOK void *valloc(size_t size) {
    void *pointer = __libc_valloc(size);
    if (pp_heap_countdown_expired(size)) pp_heap_sample_slow(pointer, size);
    return pointer;
}

HOOK void *pvalloc(size_t size) {
    void *pointer = __libc_pvalloc(size);
    // pvalloc rounds the size up to whole pages; the program owns all of them.
    size_t page = (size_t)getpagesize();
    size_t rounded = size == 0 ? page : (size + page - 1) & ~(page - 1);
    if (pp_heap_countdown_expired(rounded)) pp_heap_sample_slow(pointer, rounded);
    return pointer;
}

// glibc exports no __libc_ twin of malloc_usable_size: the chunk header it reads belongs to glibc's
// allocator, which also owns every block we return. Resolved once, in the constructor (dlsym may
// allocate); a caller before that (none known) resolves it on the spot.
static size_t (*libc_malloc_usable_size)(void *);

#include <dlfcn.h>

HOOK size_t malloc_usable_size(void *pointer) {
    size_t (*real)(void *) = __atomic_load_n(&libc_malloc_usable_size, __ATOMIC_ACQUIRE);
    if (!real) {
        real = (size_t (*)(void *))dlsym(RTLD_NEXT, "malloc_usable_size");
        if (!real) return 0;
        __atomic_store_n(&libc_malloc_usable_size, real, __ATOMIC_RELEASE);
    }
    return real(pointer);
}

// Our own malloc, by a hidden name: its address is ours even if another malloc takes precedence.
extern void *pp_hooks_own_malloc(size_t size) __attribute__((alias("malloc"), visibility("hidden")));

// Runs before ordinary constructors (before Swift and C++ static initialisers of this image).
__attribute__((constructor(101))) static void install_malloc_hooks(void) {
    void *real = dlsym(RTLD_NEXT, "malloc_usable_size");
    if (real) __atomic_store_n(&libc_malloc_usable_size, (size_t (*)(void *))real, __ATOMIC_RELEASE);
    pp_heap_hooks_linked((void *)pp_hooks_own_malloc);
}
