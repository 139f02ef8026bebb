// Block and mutex profile recording and the table of lock waiters (see pp_contention.h).
// Run inside the lock hooks (hook-safe: no allocation, no locks, errno untouched, re-entrant):
// pp_block_sample, pp_mutex_sample, pp_contention_profile_add, pp_contention_block_rate,
// pp_contention_mutex_fraction, pp_contention_now, pp_contention_block_event,
// pp_contention_mutex_event, pp_waiter_table_shared, pp_waiter_enter, pp_waiter_leave,
// pp_waiter_charge, pp_waiter_table_reset, the flag readers and the static helpers they call.
// Ordinary code only: creation (mmap), the setters (which take a creation lock), and
// pp_waiter_table_create/destroy.
#include "pp_contention.h"

#include "pp_profiler_work.h"
#include "pp_unwind.h"

#include <pthread.h>
#include <stddef.h>
#include <sys/mman.h>
#include <time.h>

// --- Sampling (Go's runtime/mprof.go) ---

int pp_block_sample(int64_t delay, int64_t rate, uint64_t random, int64_t *scaled_count, int64_t *scaled_delay) {
    if (rate <= 0) return 0;
    if (delay < 1) delay = 1;
    if (delay >= rate) {
        *scaled_count = PP_CONTENTION_COUNT_ONE;
        *scaled_delay = delay;
        return 1;
    }
    // Sampled with probability delay/rate; then it stands for rate/delay events of its size, whose
    // total delay is rate.
    if ((int64_t)(random % (uint64_t)rate) >= delay) return 0;
    *scaled_count = (rate << PP_CONTENTION_COUNT_SHIFT) / delay;
    *scaled_delay = rate;
    return 1;
}

int pp_mutex_sample(int64_t delay, int64_t fraction, uint64_t random, int64_t *scaled_count,
                    int64_t *scaled_delay) {
    if (fraction <= 0 || delay <= 0) return 0;
    if (fraction > 1 && random % (uint64_t)fraction != 0) return 0;
    *scaled_count = fraction << PP_CONTENTION_COUNT_SHIFT;
    *scaled_delay = delay > INT64_MAX / fraction ? INT64_MAX : delay * fraction;
    return 1;
}

// Settings are clamped so that the fixed-point arithmetic above cannot overflow.
#define MAX_SETTING (INT64_C(1) << 40)

// --- Profiles ---

static void *map_zeroed(size_t size) {
    void *memory = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return memory == MAP_FAILED ? NULL : memory;
}

pp_contention_profile *pp_contention_profile_create(uint32_t stack_capacity, uint32_t frame_capacity,
                                                    uint32_t bucket_capacity) {
    pp_contention_profile *profile = map_zeroed(sizeof(pp_contention_profile));
    if (!profile) return NULL;
    profile->stacks = pp_stack_table_create(stack_capacity, frame_capacity);
    // One more bucket for PP_CONTENTION_LOST_KEY, created now so that it always exists.
    profile->buckets = pp_bucket_table_create(bucket_capacity + 1);
    if (!profile->stacks || !profile->buckets || !pp_bucket_table_counters(profile->buckets, PP_CONTENTION_LOST_KEY)) {
        // The tables have no destroy function; this only happens when mmap fails, so leaking the
        // part that was mapped is the lesser evil.
        munmap(profile, sizeof(pp_contention_profile));
        return NULL;
    }
    return profile;
}

void pp_contention_profile_add(pp_contention_profile *profile, const uintptr_t *pcs, int count,
                               int64_t scaled_count, int64_t scaled_delay) {
    if (!profile) return;
    uint32_t id = pp_stack_table_intern(profile->stacks, pcs, count);
    int64_t *counters = id ? pp_bucket_table_counters(profile->buckets, id) : NULL;
    if (!counters) counters = pp_bucket_table_counters(profile->buckets, PP_CONTENTION_LOST_KEY);
    if (!counters) return;  // impossible: the lost bucket exists since creation
    __atomic_add_fetch(&counters[PP_CONTENTION_COUNTER_COUNT], scaled_count, __ATOMIC_RELAXED);
    __atomic_add_fetch(&counters[PP_CONTENTION_COUNTER_DELAY], scaled_delay, __ATOMIC_RELAXED);
    __atomic_add_fetch(&counters[PP_CONTENTION_COUNTER_EVENTS], 1, __ATOMIC_RELAXED);
}

// --- The process-wide profiles ---

enum {
    STACK_CAPACITY = 16384,
    FRAME_CAPACITY = 16384 * 24,
    BUCKET_CAPACITY = 16384,
};

static int64_t block_rate;
static int64_t mutex_fraction;
static pp_contention_profile *profiles[2];
static int hooks_installed;
static int swift_mutex_hooked;
// Sampling randomness: a splitmix64 sequence over a shared counter (only touched by slow paths).
static uint64_t random_state;
static pthread_mutex_t creation_lock = PTHREAD_MUTEX_INITIALIZER;

static uint64_t next_random(void) {
    uint64_t x = __atomic_add_fetch(&random_state, UINT64_C(0x9e3779b97f4a7c15), __ATOMIC_RELAXED);
    x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
    return x ^ (x >> 31);
}

uint64_t pp_contention_now(void) {
    struct timespec now = {0, 0};
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

// Creates the profile of `kind` if needed; ordinary code only.
static int ensure_profile(pp_contention_kind kind) {
    if (__atomic_load_n(&profiles[kind], __ATOMIC_ACQUIRE)) return 1;
    pthread_mutex_lock(&creation_lock);
    if (!profiles[kind]) {
        pp_contention_profile *profile = pp_contention_profile_create(STACK_CAPACITY, FRAME_CAPACITY, BUCKET_CAPACITY);
        if (profile) __atomic_store_n(&profiles[kind], profile, __ATOMIC_RELEASE);
        if (__atomic_load_n(&random_state, __ATOMIC_RELAXED) == 0)
            __atomic_store_n(&random_state, pp_contention_now() | 1, __ATOMIC_RELAXED);
    }
    pthread_mutex_unlock(&creation_lock);
    return __atomic_load_n(&profiles[kind], __ATOMIC_ACQUIRE) != NULL;
}

static int set_setting(int64_t *setting, pp_contention_kind kind, int64_t value) {
    if (value <= 0) {
        __atomic_store_n(setting, 0, __ATOMIC_RELEASE);
        return 1;
    }
    if (!ensure_profile(kind)) return 0;
    __atomic_store_n(setting, value > MAX_SETTING ? MAX_SETTING : value, __ATOMIC_RELEASE);
    return 1;
}

int pp_contention_set_block_rate(int64_t rate_ns) { return set_setting(&block_rate, PP_CONTENTION_BLOCK, rate_ns); }

int pp_contention_set_mutex_fraction(int64_t fraction) {
    return set_setting(&mutex_fraction, PP_CONTENTION_MUTEX, fraction);
}

int64_t pp_contention_block_rate(void) { return __atomic_load_n(&block_rate, __ATOMIC_ACQUIRE); }

int64_t pp_contention_mutex_fraction(void) { return __atomic_load_n(&mutex_fraction, __ATOMIC_ACQUIRE); }

pp_contention_profile *pp_contention_profile_get(pp_contention_kind kind) {
    if (kind != PP_CONTENTION_BLOCK && kind != PP_CONTENTION_MUTEX) return NULL;
    return __atomic_load_n(&profiles[kind], __ATOMIC_ACQUIRE);
}

void pp_contention_hooks_did_install(void) { __atomic_store_n(&hooks_installed, 1, __ATOMIC_RELEASE); }

int pp_contention_hooks_installed(void) { return __atomic_load_n(&hooks_installed, __ATOMIC_ACQUIRE); }

void pp_contention_set_swift_mutex_hooked(int hooked) { __atomic_store_n(&swift_mutex_hooked, hooked, __ATOMIC_RELEASE); }

int pp_contention_swift_mutex_hooked(void) { return __atomic_load_n(&swift_mutex_hooked, __ATOMIC_ACQUIRE); }

// The frames above must stay real frames for `skip` to count them: no inlining, no tail calls.
#define FRAME_KEEPING __attribute__((noinline, disable_tail_calls))

// Captures the stack (dropping `skip` frames above this function's caller) and adds the event.
static FRAME_KEEPING void record_with_stack(pp_contention_profile *profile, int64_t scaled_count,
                                            int64_t scaled_delay, int skip) {
    uintptr_t pcs[PP_CONTENTION_MAX_FRAMES + 1];
    unsigned flags = 0;
    // pp_capture_stack's skip 0 is the return address into this function; +1 starts at our caller.
    int count = pp_capture_stack(skip + 1, pcs, PP_CONTENTION_MAX_FRAMES, &flags);
    if (flags & PP_STACK_TRUNCATED) pcs[count++] = 2;  // SyntheticFrame.truncatedStack
    pp_contention_profile_add(profile, pcs, count, scaled_count, scaled_delay);
}

FRAME_KEEPING void pp_contention_block_event(int64_t delay, int skip) {
    int64_t rate = pp_contention_block_rate();
    pp_contention_profile *profile = pp_contention_profile_get(PP_CONTENTION_BLOCK);
    int64_t scaled_count, scaled_delay;
    if (rate <= 0 || !profile || pp_profiler_work_active()) return;
    // Only events shorter than the rate need a random number.
    uint64_t random = delay < rate ? next_random() : 0;
    if (!pp_block_sample(delay, rate, random, &scaled_count, &scaled_delay)) return;
    record_with_stack(profile, scaled_count, scaled_delay, skip + 1);
}

FRAME_KEEPING void pp_contention_mutex_event(int64_t delay, int skip) {
    int64_t fraction = pp_contention_mutex_fraction();
    pp_contention_profile *profile = pp_contention_profile_get(PP_CONTENTION_MUTEX);
    int64_t scaled_count, scaled_delay;
    if (fraction <= 0 || !profile || pp_profiler_work_active()) return;
    uint64_t random = fraction > 1 ? next_random() : 0;
    if (!pp_mutex_sample(delay, fraction, random, &scaled_count, &scaled_delay)) return;
    record_with_stack(profile, scaled_count, scaled_delay, skip + 1);
}

// --- Waiters ---

enum {
    WAIT_BUCKET_BITS = 10,
    WAIT_BUCKETS = 1 << WAIT_BUCKET_BITS,
    WAIT_WAYS = 8,  // slots per bucket: 128 bytes, two cache lines
    WAIT_SLOTS = WAIT_BUCKETS * WAIT_WAYS,
    // Further buckets a waiter may take a slot in when its home bucket is full: up to
    // WAIT_WAYS * (1 + WAIT_SPILL_BUCKETS) = 64 waiters per lock are tracked.
    WAIT_SPILL_BUCKETS = 7,
};

// A waiting thread: `lock` is claimed first and cleared last, `since` (nonzero while occupied) is
// when its waiting time was last charged or, if never, when it began waiting.
struct wait_slot {
    uintptr_t lock;
    uint64_t since;
};

struct pp_waiter_table {
    _Alignas(64) struct wait_slot slots[WAIT_SLOTS];
    // Per home bucket: waiters of locks homed there that sit in a later bucket, so that unlockers
    // look beyond the home bucket only when needed.
    uint32_t spilled[WAIT_BUCKETS];
    uint64_t untracked;
};

// Static storage: zeroed before any code runs, so hooks may use it before constructors.
static struct pp_waiter_table shared_waiters;

pp_waiter_table *pp_waiter_table_shared(void) { return &shared_waiters; }

pp_waiter_table *pp_waiter_table_create(void) { return map_zeroed(sizeof(pp_waiter_table)); }

void pp_waiter_table_destroy(pp_waiter_table *table) {
    if (table && table != &shared_waiters) munmap(table, sizeof(pp_waiter_table));
}

static uint32_t home_bucket(const void *lock) {
    uint64_t hash = ((uint64_t)(uintptr_t)lock >> 2) * UINT64_C(0x9e3779b97f4a7c15);
    return (uint32_t)(hash >> (64 - WAIT_BUCKET_BITS));
}

// All slot accesses are sequentially consistent: pp_waiter_charge relies on it (see there).
#define SC __ATOMIC_SEQ_CST

static uint32_t claim_in_bucket(pp_waiter_table *table, uint32_t bucket, uintptr_t lock, uint64_t start) {
    for (uint32_t way = 0; way < WAIT_WAYS; way++) {
        uint32_t index = bucket * WAIT_WAYS + way;
        struct wait_slot *slot = &table->slots[index];
        uintptr_t expected = 0;
        if (__atomic_load_n(&slot->lock, __ATOMIC_RELAXED) == 0 &&
            __atomic_compare_exchange_n(&slot->lock, &expected, lock, 0, SC, SC)) {
            __atomic_store_n(&slot->since, start, SC);
            return index + 1;
        }
    }
    return 0;
}

uint32_t pp_waiter_enter(pp_waiter_table *table, const void *lock, uint64_t start_ns) {
    if (!table || !lock) return 0;
    if (start_ns == 0) start_ns = 1;  // 0 marks a slot whose waiter is arriving or leaving
    uint32_t home = home_bucket(lock);
    uint32_t token = claim_in_bucket(table, home, (uintptr_t)lock, start_ns);
    if (token) return token;
    // Announce the spill before taking the slot, so an unlocker never misses it.
    __atomic_add_fetch(&table->spilled[home], 1, SC);
    for (uint32_t step = 1; step <= WAIT_SPILL_BUCKETS; step++) {
        token = claim_in_bucket(table, (home + step) & (WAIT_BUCKETS - 1), (uintptr_t)lock, start_ns);
        if (token) return token;
    }
    __atomic_sub_fetch(&table->spilled[home], 1, SC);
    __atomic_add_fetch(&table->untracked, 1, __ATOMIC_RELAXED);
    return 0;
}

uint64_t pp_waiter_leave(pp_waiter_table *table, uint32_t token) {
    if (!table || token == 0 || token > WAIT_SLOTS) return 0;
    struct wait_slot *slot = &table->slots[token - 1];
    uintptr_t lock = __atomic_load_n(&slot->lock, SC);
    // After this exchange no unlocker can charge the slot any more (its compare-and-swap fails).
    uint64_t charged_until = __atomic_exchange_n(&slot->since, 0, SC);
    __atomic_store_n(&slot->lock, 0, SC);
    uint32_t home = home_bucket((const void *)lock);
    if ((token - 1) / WAIT_WAYS != home) __atomic_sub_fetch(&table->spilled[home], 1, SC);
    return charged_until;
}

// A slot is charged only if its `since` is still the value read between two reads of `lock` that
// both saw our lock. Occupants store `lock` before `since` and clear `since` before `lock`, so a
// successful compare-and-swap proves that the occupant whose clock we advance waits for our lock,
// and the swap itself ensures that concurrent unlockers (readers of an rwlock) never charge the
// same interval twice.
static int64_t charge_bucket(pp_waiter_table *table, uint32_t bucket, uintptr_t lock, uint64_t now) {
    int64_t total = 0;
    for (uint32_t way = 0; way < WAIT_WAYS; way++) {
        struct wait_slot *slot = &table->slots[bucket * WAIT_WAYS + way];
        if (__atomic_load_n(&slot->lock, SC) != lock) continue;
        uint64_t since = __atomic_load_n(&slot->since, SC);
        if (since == 0 || since >= now) continue;
        if (__atomic_load_n(&slot->lock, SC) != lock) continue;
        if (__atomic_compare_exchange_n(&slot->since, &since, now, 0, SC, SC)) total += (int64_t)(now - since);
    }
    return total;
}

int64_t pp_waiter_charge(pp_waiter_table *table, const void *lock, uint64_t now_ns) {
    if (!table || !lock) return 0;
    uint32_t home = home_bucket(lock);
    int64_t total = charge_bucket(table, home, (uintptr_t)lock, now_ns);
    if (__atomic_load_n(&table->spilled[home], SC) > 0) {
        for (uint32_t step = 1; step <= WAIT_SPILL_BUCKETS; step++)
            total += charge_bucket(table, (home + step) & (WAIT_BUCKETS - 1), (uintptr_t)lock, now_ns);
    }
    return total;
}

void pp_waiter_table_reset(pp_waiter_table *table) {
    if (!table) return;
    // Writes only occupied slots, so that a child does not copy untouched pages.
    for (uint32_t index = 0; index < WAIT_SLOTS; index++) {
        struct wait_slot *slot = &table->slots[index];
        if (__atomic_load_n(&slot->lock, __ATOMIC_RELAXED) == 0) continue;
        __atomic_store_n(&slot->since, 0, SC);
        __atomic_store_n(&slot->lock, 0, SC);
    }
    for (uint32_t bucket = 0; bucket < WAIT_BUCKETS; bucket++)
        if (__atomic_load_n(&table->spilled[bucket], __ATOMIC_RELAXED) != 0)
            __atomic_store_n(&table->spilled[bucket], 0, SC);
}

uint64_t pp_waiter_table_untracked(const pp_waiter_table *table) {
    return table ? __atomic_load_n(&table->untracked, __ATOMIC_RELAXED) : 0;
}
