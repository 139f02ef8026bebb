// Recording for the block and mutex profiles, fed by the lock hooks of PprofHooks (hooks_locks.c).
//
// block: every wait of a hooked lock, condition or semaphore, at the waiter's stack, sampled by
//   `rate` nanoseconds with Go's bias correction (a wait of d >= rate always counts; a shorter one
//   with probability d/rate, weighted rate/d).
// mutex: at each unlock that had waiters, the time those waiters spent waiting since the previous
//   such unlock (summed over waiters), at the unlocker's stack, sampled 1 in `fraction` and scaled
//   by `fraction` as Go >= 1.20 does.
//
// Everything marked "hook-safe" runs inside the lock hooks: no allocation, no locks, no libc calls
// but clock_gettime (vDSO), errno untouched; safe to re-enter from a signal handler.
#ifndef PP_CONTENTION_H
#define PP_CONTENTION_H

#include <stdint.h>

#include "pp_tables.h"

// Counts are stored in fixed point: 1 contention = PP_CONTENTION_COUNT_ONE.
#define PP_CONTENTION_COUNT_SHIFT 10
#define PP_CONTENTION_COUNT_ONE (1 << PP_CONTENTION_COUNT_SHIFT)

// Bucket counters of a contention profile; the bucket key is the stack id.
enum {
    PP_CONTENTION_COUNTER_COUNT = 0,   // scaled contentions, fixed point
    PP_CONTENTION_COUNTER_DELAY = 1,   // scaled delay, nanoseconds
    PP_CONTENTION_COUNTER_EVENTS = 2,  // events actually sampled (unscaled)
};

// The bucket key under which events whose stack could not be stored are counted.
#define PP_CONTENTION_LOST_KEY 0x100000000ull

// Deepest stack recorded; deeper ones end in a truncation marker.
#define PP_CONTENTION_MAX_FRAMES 64

typedef enum pp_contention_kind {
    PP_CONTENTION_BLOCK = 0,
    PP_CONTENTION_MUTEX = 1,
} pp_contention_kind;

// One profile's storage: deduplicated stacks and per-stack counters, all mmap'd and bounded. The
// PP_CONTENTION_LOST_KEY bucket exists from creation, so every event is counted somewhere.
typedef struct pp_contention_profile {
    pp_stack_table *stacks;
    pp_bucket_table *buckets;
} pp_contention_profile;

// Creates a profile's tables (mmap; not hook-safe). Returns NULL on failure.
pp_contention_profile *pp_contention_profile_create(uint32_t stack_capacity, uint32_t frame_capacity,
                                                    uint32_t bucket_capacity);

// Adds a weighted event with the given stack (hook-safe). An event whose stack or bucket does not
// fit is counted under PP_CONTENTION_LOST_KEY (and the drop in the table's drop counter).
void pp_contention_profile_add(pp_contention_profile *profile, const uintptr_t *pcs, int count,
                               int64_t scaled_count, int64_t scaled_delay);

// Go's sampling decisions (hook-safe, pure). `random` is a uniformly distributed 64-bit value.
// Each returns 1 and the weights to add if the event is sampled, else 0.
int pp_block_sample(int64_t delay, int64_t rate, uint64_t random, int64_t *scaled_count, int64_t *scaled_delay);
int pp_mutex_sample(int64_t delay, int64_t fraction, uint64_t random, int64_t *scaled_count,
                    int64_t *scaled_delay);

// --- The process-wide profiles (what the hooks record into) ---

// Settings. Setting a positive value creates the profile's tables on first use (not hook-safe);
// returns 0 if they could not be created (the setting is then left off). Values <= 0 mean off.
int pp_contention_set_block_rate(int64_t rate_ns);
int pp_contention_set_mutex_fraction(int64_t fraction);
int64_t pp_contention_block_rate(void);      // hook-safe
int64_t pp_contention_mutex_fraction(void);  // hook-safe

// The process-wide profile of `kind`, or NULL if it was never enabled.
pp_contention_profile *pp_contention_profile_get(pp_contention_kind kind);

// Called once by the hooks' constructor; tells the Swift side that the hooks are linked.
void pp_contention_hooks_did_install(void);
int pp_contention_hooks_installed(void);

// Whether Synchronization.Mutex's slow path is hooked (not when the library is linked statically).
void pp_contention_set_swift_mutex_hooked(int hooked);
int pp_contention_swift_mutex_hooked(void);

// CLOCK_MONOTONIC in nanoseconds (hook-safe).
uint64_t pp_contention_now(void);

// Records a finished wait of `delay` ns in the block profile, if sampled (hook-safe). The stack
// starts at the return address into the function `skip` frames above the caller of this function:
// skip 0 makes the caller's own frame the leaf.
void pp_contention_block_event(int64_t delay, int skip);

// Records an unlock that caused `delay` ns of waiting in the mutex profile, if sampled (hook-safe).
void pp_contention_mutex_event(int64_t delay, int skip);

// --- Waiters: who waits for which lock since when, so that an unlock can be charged ---

// Fixed-size table of waiting threads keyed by lock address: a waiter occupies a slot in its lock's
// home bucket (or, if that is full, in one of the next few buckets) while it waits. An unlocker
// scans those slots, charges each waiter's time since its clock was last reset, and resets it, so
// successive unlockers never charge the same interval twice. Lock-free; a waiter that finds no
// slot is not tracked (counted in `untracked`).
typedef struct pp_waiter_table pp_waiter_table;

// The process-wide table used by the hooks (static storage, usable before any constructor).
pp_waiter_table *pp_waiter_table_shared(void);

// A private table (mmap; for tests). Release with pp_waiter_table_destroy.
pp_waiter_table *pp_waiter_table_create(void);
void pp_waiter_table_destroy(pp_waiter_table *table);

// Registers a thread that starts waiting for `lock` at `start_ns` (hook-safe). Returns a token for
// pp_waiter_leave, 0 if untracked.
uint32_t pp_waiter_enter(pp_waiter_table *table, const void *lock, uint64_t start_ns);

// Ends the wait registered under `token` (hook-safe). Returns the time up to which the wait was
// charged (its start if it never was); 0 for a token of 0.
uint64_t pp_waiter_leave(pp_waiter_table *table, uint32_t token);

// The time the tracked waiters of `lock` waited since their clocks were last reset, up to `now_ns`;
// resets their clocks to `now_ns` (hook-safe).
int64_t pp_waiter_charge(pp_waiter_table *table, const void *lock, uint64_t now_ns);

// Forgets every waiter: in a child after fork, where the waiting threads no longer exist. Only the
// calling thread may run (hook-safe).
void pp_waiter_table_reset(pp_waiter_table *table);

// Waits that could not be tracked (no free slot) since the table was created.
uint64_t pp_waiter_table_untracked(const pp_waiter_table *table);

#endif
