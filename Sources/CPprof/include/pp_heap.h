// Allocation sampling for the heap and allocs profiles: the sampler and tables that the malloc
// hooks (PprofHooks) feed, and what the Swift side reads when it writes a profile.
//
// Sampling is Go's: a per-thread byte countdown drawn from an exponential distribution with mean
// `rate` (a Poisson process over allocated bytes), so an allocation of `size` bytes is sampled with
// probability 1 - exp(-size/rate). A sampled allocation's stack is interned in a stack table, counted
// in a bucket per (stack, size) and remembered in a live-pointer table until it is freed.
#ifndef PP_HEAP_H
#define PP_HEAP_H

#include <stddef.h>
#include <stdint.h>

// ---- For the Swift side (never called inside a hook) ------------------------------------------

// Go's MemProfileRate: mean bytes between samples; 1 samples every allocation, 0 switches sampling
// off. Negative values are treated as 0. Takes effect at once on the calling thread and on other
// threads when their current countdown runs out (at the old rate).
void pp_heap_set_sample_rate(int64_t rate);
int64_t pp_heap_sample_rate(void);

// 1 when the malloc hooks are linked (PprofHooks or the preload library) and are the process's
// malloc, else 0. `why_not` (if given) receives a static explanation when 0.
int pp_heap_hooks_active(const char **why_not);

// One bucket: every sampled allocation of `size` bytes with stack `stack_id` (0: the stack was
// dropped because the stack table was full). Counters as Go's memRecord: allocations and frees of
// sampled objects, unscaled.
typedef struct pp_heap_bucket {
    uint32_t stack_id;
    uint64_t size;
    int64_t alloc_objects;
    int64_t alloc_bytes;
    int64_t free_objects;
    int64_t free_bytes;
} pp_heap_bucket;

typedef void (*pp_heap_bucket_visitor)(void *context, const pp_heap_bucket *bucket);

// Visits every bucket. Concurrent allocations may or may not be seen; a bucket's free counters may
// briefly run ahead of its allocation counters (clamp at zero).
void pp_heap_visit_buckets(pp_heap_bucket_visitor visitor, void *context);

// The frames of a sampled stack (return addresses, leaf first, the hook frames already skipped).
int pp_heap_stack(uint32_t stack_id, const uintptr_t **pcs);

typedef struct pp_heap_stats {
    int64_t sample_rate;
    uint64_t live_entries;        // sampled objects currently in the live-pointer table
    uint64_t live_capacity;       // slots in the live-pointer table (fixed)
    uint64_t live_inserted;       // sampled objects ever inserted
    uint64_t untracked_objects;   // sampled objects counted as allocated but not tracked until free
    uint64_t dropped_objects;     // sampled allocations not recorded at all (bucket table full, reentry)
    uint64_t dropped_bytes;
    uint64_t stacks;              // distinct stacks interned
    uint64_t stacks_dropped;      // stacks that did not fit (recorded under stack id 0)
    uint64_t buckets_dropped;
    uint64_t table_bytes;         // virtual memory mapped for the tables
} pp_heap_stats;

void pp_heap_get_stats(pp_heap_stats *out);

// glibc's malloc statistics (mallinfo2, glibc >= 2.33), field for field. Returns 0 if unavailable.
typedef struct pp_malloc_info {
    uint64_t arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks, uordblks, fordblks, keepcost;
} pp_malloc_info;

int pp_heap_malloc_info(pp_malloc_info *out);

// ---- For the hooks (PprofHooks' hooks_malloc.c); not visible to Swift -------------------------
#if !defined(__swift__)

#define PP_HEAP_HIDDEN __attribute__((visibility("hidden")))

// Bytes this thread may still allocate before the next sample. Initial-exec TLS: one %fs-relative
// access, no allocation, valid from before main until the thread's last free at exit. Zero on a new
// thread, so its first allocation takes the slow path, which draws the first countdown.
extern __thread int64_t pp_heap_countdown __attribute__((tls_model("initial-exec"))) PP_HEAP_HIDDEN;

// The fast-path filter in front of the live-pointer table: a saturating counter of the live sampled
// objects per 16-byte address (glibc's allocation granularity), aliased modulo 16 MiB. Zero: no
// sampled object starts at this address, and `free` needs no table lookup. Per address rather than
// per page, so that a hot malloc/free loop does not pay a lookup on every free merely because a
// long-lived sampled object sits on the same page; neighbouring objects still share cache lines,
// and filter pages never written read the kernel's shared zero page.
#define PP_HEAP_FILTER_BITS 20
#define PP_HEAP_FILTER_SHIFT 4
extern uint16_t pp_heap_filter[1u << PP_HEAP_FILTER_BITS] PP_HEAP_HIDDEN;

// True when an allocation of `size` bytes exhausts the countdown: call pp_heap_sample_slow.
static inline __attribute__((always_inline)) int pp_heap_countdown_expired(size_t size) {
    int64_t left = pp_heap_countdown - (int64_t)size;
    pp_heap_countdown = left;
    return __builtin_expect(left <= 0, 0);
}

// True when `pointer` may be a live sampled object (then call pp_heap_take_live).
static inline __attribute__((always_inline)) int pp_heap_maybe_sampled(const void *pointer) {
    uintptr_t page = ((uintptr_t)pointer >> PP_HEAP_FILTER_SHIFT) & ((1u << PP_HEAP_FILTER_BITS) - 1);
    return __builtin_expect(__atomic_load_n(&pp_heap_filter[page], __ATOMIC_RELAXED) != 0, 0);
}

// The slow path of an allocation whose countdown expired: draws the next countdown and, if this
// allocation is sampled and `pointer` is not NULL, records it. Must be called directly from the
// exported hook (not through a helper), because it skips exactly two frames (itself and the hook)
// so that the stack starts at the hook's caller. Preserves errno.
void pp_heap_sample_slow(void *pointer, size_t size) PP_HEAP_HIDDEN;

// Removes `pointer` from the live-pointer table if it is a sampled object; returns its bucket key
// (0 if it is not sampled). Call before the memory goes back to glibc.
uint64_t pp_heap_take_live(const void *pointer) PP_HEAP_HIDDEN;

// Counts a free of the object taken by pp_heap_take_live (key nonzero).
void pp_heap_count_free(uint64_t key) PP_HEAP_HIDDEN;

// Puts back an object taken by pp_heap_take_live whose release failed (realloc returned NULL).
void pp_heap_restore_live(const void *pointer, uint64_t key) PP_HEAP_HIDDEN;

// Called by the hooks' constructor: the hooks are linked in; `self_malloc` is the address of the
// hooks' own `malloc`, compared with the process's malloc to see whether ours is in effect.
void pp_heap_hooks_linked(void *self_malloc) PP_HEAP_HIDDEN;

#endif  // !__swift__

#endif
