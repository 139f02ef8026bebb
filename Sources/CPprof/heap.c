// Allocation sampler and its tables. pp_heap_sample_slow, pp_heap_take_live, pp_heap_count_free and
// pp_heap_restore_live (and everything static they call) run inside the malloc hooks, possibly
// before main, during thread exit, in a forked child, or nested in a signal handler that allocates:
// no allocation, no locks, no libc calls except mmap at first use (errno saved and restored), all
// shared state lock-free. The other functions are for the Swift side.
#include "pp_heap.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/auxv.h>
#include <sys/mman.h>

#include "pp_profiler_work.h"
#include "pp_tables.h"
#include "pp_unwind.h"

// ---- Sizes --------------------------------------------------------------------------------------

// Go >= 1.23 records up to 128 frames of an allocation's stack.
#define MAX_FRAMES 128
#define STACK_CAPACITY 32768
#define STACK_FRAME_CAPACITY (2u << 20)
#define BUCKET_CAPACITY 65536
// Live-pointer table: open addressing, 16-byte slots, at most LIVE_MAX_PROBE slots from the hash.
#define LIVE_SLOTS (1u << 20)
#define LIVE_MAX_PROBE 64
// While sampling is off, a thread still looks at the rate once per this many bytes it allocates.
#define OFF_POLL_BYTES (1 << 20)

// Bucket keys: bit 63 set (never 0), size in bits 24..62, stack id in bits 0..23.
#define KEY_STACK_BITS 24
#define KEY_MAX_SIZE ((1ull << 39) - 1)

static uint64_t bucket_key(uint32_t stack_id, uint64_t size) {
    if (size > KEY_MAX_SIZE) size = KEY_MAX_SIZE;
    return (1ull << 63) | (size << KEY_STACK_BITS) | (stack_id & ((1u << KEY_STACK_BITS) - 1));
}

static uint64_t key_size(uint64_t key) { return (key & ~(1ull << 63)) >> KEY_STACK_BITS; }
static uint32_t key_stack(uint64_t key) { return (uint32_t)(key & ((1u << KEY_STACK_BITS) - 1)); }

// ---- Shared state -------------------------------------------------------------------------------

__thread int64_t pp_heap_countdown __attribute__((tls_model("initial-exec")));
uint16_t pp_heap_filter[1u << PP_HEAP_FILTER_BITS];

// Per-thread sampler state, touched only on the slow path.
static __thread uint64_t thread_random __attribute__((tls_model("initial-exec")));
static __thread uint8_t thread_ready __attribute__((tls_model("initial-exec")));
static __thread uint8_t thread_in_sampler __attribute__((tls_model("initial-exec")));

static int64_t sample_rate = 512 * 1024;

struct live_slot {
    uintptr_t pointer;  // LIVE_EMPTY, LIVE_TOMBSTONE or a live sampled object
    uint64_t key;       // its bucket key; written after `pointer` is claimed
};
#define LIVE_EMPTY 0
#define LIVE_TOMBSTONE 1

enum { TABLES_NONE, TABLES_CREATING, TABLES_READY, TABLES_FAILED };
static int tables_state;
static pp_stack_table *stacks;
static pp_bucket_table *buckets;
static struct live_slot *live;
static uint64_t tables_bytes;

static uint64_t live_inserted, live_removed, untracked_objects, dropped_objects, dropped_bytes;

static int hooks_linked;
static void *hooks_malloc;
static uint64_t random_seed;

// ---- Random countdowns --------------------------------------------------------------------------

static uint64_t splitmix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint64_t next_random(void) {
    uint64_t x = thread_random;
    if (x == 0) {
        // Distinct per thread: the process seed, a global sequence and this thread's TLS address.
        uint64_t sequence = __atomic_add_fetch(&random_seed, 0x9e3779b97f4a7c15ull, __ATOMIC_RELAXED);
        x = splitmix64(sequence ^ (uint64_t)(uintptr_t)&thread_random) | 1;
    }
    // xorshift64*
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    thread_random = x;
    return x * 0x2545f4914f6cdd1dull;
}

// Natural logarithm for x in (0, 1], without libm (no PLT, no errno): x = m * 2^e with m in
// [sqrt(1/2), sqrt(2)), ln(m) = 2 atanh(s), s = (m-1)/(m+1), |s| < 0.172; error < 1e-9.
static double natural_log(double x) {
    union {
        double d;
        uint64_t u;
    } v = {.d = x};
    int exponent = (int)((v.u >> 52) & 0x7ff) - 1023;
    v.u = (v.u & ((1ull << 52) - 1)) | (1023ull << 52);
    double m = v.d;
    if (m > 1.4142135623730951) {
        m *= 0.5;
        exponent += 1;
    }
    double s = (m - 1.0) / (m + 1.0);
    double s2 = s * s;
    double series = 1.0 + s2 * (1.0 / 3 + s2 * (1.0 / 5 + s2 * (1.0 / 7 + s2 * (1.0 / 9 + s2 * (1.0 / 11)))));
    return exponent * 0.6931471805599453 + 2.0 * s * series;
}

// The next countdown: exponential with mean `rate` (Go's nextSample), 0 for rate 1 (sample
// everything), a polling interval when off.
static int64_t draw_countdown(int64_t rate) {
    if (rate <= 0) return OFF_POLL_BYTES;
    if (rate == 1) return 0;
    double uniform = (double)((next_random() >> 11) + 1) * 0x1.0p-53;  // (0, 1]
    double bytes = -natural_log(uniform) * (double)rate;
    if (bytes > 0x1.0p60) bytes = 0x1.0p60;
    return (int64_t)bytes + 1;
}

// ---- Tables -------------------------------------------------------------------------------------

static void *map_table(size_t size) {
    void *memory = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return memory == MAP_FAILED ? NULL : memory;
}

// Creates the tables on first use. Whoever loses the race does not wait: its sample is dropped.
static int tables_ready(void) {
    int state = __atomic_load_n(&tables_state, __ATOMIC_ACQUIRE);
    if (state == TABLES_READY) return 1;
    if (state != TABLES_NONE) return 0;
    int expected = TABLES_NONE;
    if (!__atomic_compare_exchange_n(&tables_state, &expected, TABLES_CREATING, 0, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE))
        return expected == TABLES_READY;
    stacks = pp_stack_table_create(STACK_CAPACITY, STACK_FRAME_CAPACITY);
    buckets = pp_bucket_table_create(BUCKET_CAPACITY);
    live = map_table(sizeof(struct live_slot) * LIVE_SLOTS);
    if (!stacks || !buckets || !live) {
        __atomic_store_n(&tables_state, TABLES_FAILED, __ATOMIC_RELEASE);
        return 0;
    }
    tables_bytes = sizeof(struct live_slot) * LIVE_SLOTS + (uint64_t)STACK_FRAME_CAPACITY * sizeof(uintptr_t) +
                   (uint64_t)STACK_CAPACITY * 52 + (uint64_t)BUCKET_CAPACITY * 80 + sizeof(pp_heap_filter);
    __atomic_store_n(&tables_state, TABLES_READY, __ATOMIC_RELEASE);
    return 1;
}

static uint32_t live_hash(uintptr_t pointer) {
    uint64_t h = (uint64_t)(pointer >> 4) * 0x9e3779b97f4a7c15ull;
    return (uint32_t)(h >> 32);
}

static uint16_t *filter_counter(uintptr_t pointer) {
    return &pp_heap_filter[(pointer >> PP_HEAP_FILTER_SHIFT) & ((1u << PP_HEAP_FILTER_BITS) - 1)];
}

// Saturating: a counter that reached its maximum stays there (its page always takes the lookup),
// so it can never wrap to zero while sampled objects on that page are live.
static void filter_add(uintptr_t pointer) {
    uint16_t *counter = filter_counter(pointer);
    uint16_t value = __atomic_load_n(counter, __ATOMIC_RELAXED);
    while (value != UINT16_MAX &&
           !__atomic_compare_exchange_n(counter, &value, (uint16_t)(value + 1), 1, __ATOMIC_RELEASE, __ATOMIC_RELAXED)) {
    }
}

static void filter_remove(uintptr_t pointer) {
    uint16_t *counter = filter_counter(pointer);
    uint16_t value = __atomic_load_n(counter, __ATOMIC_RELAXED);
    while (value != UINT16_MAX && value != 0 &&
           !__atomic_compare_exchange_n(counter, &value, (uint16_t)(value - 1), 1, __ATOMIC_RELEASE, __ATOMIC_RELAXED)) {
    }
}

// Inserts into the first empty or dead slot within LIVE_MAX_PROBE of the hash. Slots never become
// empty again (a removed entry leaves a tombstone that a later insert reuses), so a lookup may stop
// at the first empty slot; the probe bound keeps lookups short once tombstones fill the table.
// A pointer is inserted by the thread whose malloc returned it, before returning it, and removed by
// the thread that frees it: the program orders the two, so no slot is contended for one pointer.
static int live_insert(uintptr_t pointer, uint64_t key) {
    uint32_t start = live_hash(pointer);
    for (uint32_t probe = 0; probe < LIVE_MAX_PROBE; probe++) {
        struct live_slot *slot = &live[(start + probe) & (LIVE_SLOTS - 1)];
        uintptr_t current = __atomic_load_n(&slot->pointer, __ATOMIC_ACQUIRE);
        while (current == LIVE_EMPTY || current == LIVE_TOMBSTONE) {
            if (__atomic_compare_exchange_n(&slot->pointer, &current, pointer, 0, __ATOMIC_ACQ_REL,
                                            __ATOMIC_ACQUIRE)) {
                __atomic_store_n(&slot->key, key, __ATOMIC_RELEASE);
                __atomic_add_fetch(&live_inserted, 1, __ATOMIC_RELAXED);
                filter_add(pointer);
                return 1;
            }
        }
    }
    return 0;
}

uint64_t pp_heap_take_live(const void *pointer_) {
    uintptr_t pointer = (uintptr_t)pointer_;
    if (__atomic_load_n(&tables_state, __ATOMIC_ACQUIRE) != TABLES_READY) return 0;
    uint32_t start = live_hash(pointer);
    for (uint32_t probe = 0; probe < LIVE_MAX_PROBE; probe++) {
        struct live_slot *slot = &live[(start + probe) & (LIVE_SLOTS - 1)];
        uintptr_t current = __atomic_load_n(&slot->pointer, __ATOMIC_ACQUIRE);
        if (current == LIVE_EMPTY) return 0;
        if (current != pointer) continue;
        // Read the key before giving the slot up: afterwards another insert may reuse it.
        uint64_t key = __atomic_load_n(&slot->key, __ATOMIC_ACQUIRE);
        if (!__atomic_compare_exchange_n(&slot->pointer, &current, LIVE_TOMBSTONE, 0, __ATOMIC_ACQ_REL,
                                         __ATOMIC_RELAXED))
            return 0;  // only on a double free racing with itself
        __atomic_add_fetch(&live_removed, 1, __ATOMIC_RELAXED);
        filter_remove(pointer);
        return key;
    }
    return 0;
}

void pp_heap_count_free(uint64_t key) {
    int64_t *counters = pp_bucket_table_counters(buckets, key);
    if (!counters) return;  // cannot happen: the bucket existed when the object was sampled
    __atomic_add_fetch(&counters[2], 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&counters[3], (int64_t)key_size(key), __ATOMIC_RELAXED);
}

void pp_heap_restore_live(const void *pointer, uint64_t key) {
    if (!live_insert((uintptr_t)pointer, key)) {
        // Lost track: count it as freed so it does not stay in use forever.
        __atomic_add_fetch(&untracked_objects, 1, __ATOMIC_RELAXED);
        pp_heap_count_free(key);
    }
}

// ---- The sampled allocation ---------------------------------------------------------------------

// Records one sampled allocation: stack, bucket, live entry. `pcs` holds the stack.
static void record_allocation(uintptr_t pointer, uint64_t size, const uintptr_t *pcs, int count) {
    uint32_t stack_id = pp_stack_table_intern(stacks, pcs, count);  // 0 if the table is full
    uint64_t key = bucket_key(stack_id, size);
    int64_t *counters = pp_bucket_table_counters(buckets, key);
    if (!counters) {
        __atomic_add_fetch(&dropped_objects, 1, __ATOMIC_RELAXED);
        __atomic_add_fetch(&dropped_bytes, size, __ATOMIC_RELAXED);
        return;
    }
    __atomic_add_fetch(&counters[0], 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&counters[1], (int64_t)key_size(key), __ATOMIC_RELAXED);
    if (!live_insert(pointer, key)) {
        __atomic_add_fetch(&untracked_objects, 1, __ATOMIC_RELAXED);
        pp_heap_count_free(key);
    }
}

__attribute__((noinline)) void pp_heap_sample_slow(void *pointer, size_t size) {
    int saved_errno = errno;
    int64_t rate = __atomic_load_n(&sample_rate, __ATOMIC_RELAXED);
    int sampled = thread_ready && rate > 0 && pointer != NULL && !pp_profiler_work_active();
    thread_ready = 1;
    pp_heap_countdown = draw_countdown(rate);
    if (sampled) {
        if (thread_in_sampler || !tables_ready()) {
            // A signal handler allocating inside our own sampler, or tables not there: never recurse.
            __atomic_add_fetch(&dropped_objects, 1, __ATOMIC_RELAXED);
            __atomic_add_fetch(&dropped_bytes, size, __ATOMIC_RELAXED);
        } else {
            thread_in_sampler = 1;
            uintptr_t pcs[MAX_FRAMES];
            unsigned flags = 0;
            // Skip this function and the hook: the stack starts at the hook's caller. Captured here,
            // in the function the hook calls, so the skip count is exact.
            int count = pp_capture_stack(2, pcs, MAX_FRAMES - 1, &flags);
            // Mark stacks whose outer frames are missing with the pseudo-frames of ProfileBuilder.swift.
            if (flags & PP_STACK_TRUNCATED)
                pcs[count++] = 2;  // SyntheticFrame.truncatedStack
            else if (flags & PP_STACK_INCOMPLETE)
                pcs[count++] = 3;  // SyntheticFrame.unwindStopped
            record_allocation((uintptr_t)pointer, size, pcs, count);
            thread_in_sampler = 0;
        }
    }
    errno = saved_errno;
}

// ---- Installation -------------------------------------------------------------------------------

static void after_fork_in_child(void) {
    // A thread that was creating the tables does not exist in the child: let the child retry.
    int expected = TABLES_CREATING;
    __atomic_compare_exchange_n(&tables_state, &expected, TABLES_NONE, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
}

void pp_heap_hooks_linked(void *self_malloc) {
    const unsigned char *random_bytes = (const unsigned char *)getauxval(AT_RANDOM);
    uint64_t seed = 0;
    if (random_bytes)
        for (int i = 0; i < 8; i++) seed = (seed << 8) | random_bytes[i];
    __atomic_add_fetch(&random_seed, seed, __ATOMIC_RELAXED);
    const char *rate = getenv("PPROF_HEAP_SAMPLE_RATE");
    if (rate && *rate) {
        char *end = NULL;
        long long value = strtoll(rate, &end, 10);
        if (end && *end == '\0') pp_heap_set_sample_rate(value);
    }
    pthread_atfork(NULL, NULL, after_fork_in_child);
    tables_ready();
    __atomic_store_n(&hooks_malloc, self_malloc, __ATOMIC_RELEASE);
    __atomic_store_n(&hooks_linked, 1, __ATOMIC_RELEASE);
}

// ---- The Swift side -----------------------------------------------------------------------------

void pp_heap_set_sample_rate(int64_t rate) {
    if (rate < 0) rate = 0;
    __atomic_store_n(&sample_rate, rate, __ATOMIC_RELAXED);
    // Restart this thread's countdown at the new rate (other threads pick it up at their next sample).
    pp_heap_countdown = draw_countdown(rate);
    thread_ready = 1;
}

int64_t pp_heap_sample_rate(void) { return __atomic_load_n(&sample_rate, __ATOMIC_RELAXED); }

int pp_heap_hooks_active(const char **why_not) {
    if (!__atomic_load_n(&hooks_linked, __ATOMIC_ACQUIRE)) {
        if (why_not)
            *why_not =
                "allocation sampling is not installed: link the PprofHooks product into the executable, or run it "
                "with LD_PRELOAD=libPprofPreload.so";
        return 0;
    }
    // The hooks are linked, but another definition of malloc may come first (e.g. an allocator
    // linked into the executable while our library is preloaded).
    void *process_malloc = dlsym(RTLD_DEFAULT, "malloc");
    if (process_malloc != __atomic_load_n(&hooks_malloc, __ATOMIC_ACQUIRE)) {
        if (why_not)
            *why_not = "allocation sampling is not installed: the PprofHooks malloc is linked but another malloc "
                       "takes precedence in this process";
        return 0;
    }
    if (__atomic_load_n(&tables_state, __ATOMIC_ACQUIRE) == TABLES_FAILED) {
        if (why_not) *why_not = "allocation sampling failed: could not map memory for its tables";
        return 0;
    }
    return 1;
}

struct visit_context {
    pp_heap_bucket_visitor visitor;
    void *context;
};

static void visit_bucket(void *context_, uint64_t key, const int64_t *counters) {
    struct visit_context *context = context_;
    pp_heap_bucket bucket = {
        .stack_id = key_stack(key),
        .size = key_size(key),
        .alloc_objects = counters[0],
        .alloc_bytes = counters[1],
        .free_objects = counters[2],
        .free_bytes = counters[3],
    };
    context->visitor(context->context, &bucket);
}

void pp_heap_visit_buckets(pp_heap_bucket_visitor visitor, void *context) {
    if (__atomic_load_n(&tables_state, __ATOMIC_ACQUIRE) != TABLES_READY) return;
    struct visit_context visit = {visitor, context};
    pp_bucket_table_visit(buckets, visit_bucket, &visit);
}

int pp_heap_stack(uint32_t stack_id, const uintptr_t **pcs) {
    if (__atomic_load_n(&tables_state, __ATOMIC_ACQUIRE) != TABLES_READY) return 0;
    return pp_stack_table_get(stacks, stack_id, pcs);
}

int pp_heap_malloc_info(pp_malloc_info *out) {
    // Looked up at run time: mallinfo2 is glibc >= 2.33, and <malloc.h> is not importable into Swift.
    struct mallinfo2_fields {
        size_t arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks, uordblks, fordblks, keepcost;
    };
    typedef struct mallinfo2_fields (*mallinfo2_function)(void);
    mallinfo2_function mallinfo2 = (mallinfo2_function)dlsym(RTLD_DEFAULT, "mallinfo2");
    if (!mallinfo2) return 0;
    struct mallinfo2_fields info = mallinfo2();
    *out = (pp_malloc_info){info.arena,   info.ordblks,  info.smblks,   info.hblks,    info.hblkhd,
                            info.usmblks, info.fsmblks,  info.uordblks, info.fordblks, info.keepcost};
    return 1;
}

void pp_heap_get_stats(pp_heap_stats *out) {
    int ready = __atomic_load_n(&tables_state, __ATOMIC_ACQUIRE) == TABLES_READY;
    uint64_t removed = __atomic_load_n(&live_removed, __ATOMIC_RELAXED);
    uint64_t inserted = __atomic_load_n(&live_inserted, __ATOMIC_RELAXED);
    *out = (pp_heap_stats){
        .sample_rate = pp_heap_sample_rate(),
        .live_entries = inserted >= removed ? inserted - removed : 0,
        .live_capacity = LIVE_SLOTS,
        .live_inserted = inserted,
        .untracked_objects = __atomic_load_n(&untracked_objects, __ATOMIC_RELAXED),
        .dropped_objects = __atomic_load_n(&dropped_objects, __ATOMIC_RELAXED),
        .dropped_bytes = __atomic_load_n(&dropped_bytes, __ATOMIC_RELAXED),
        .stacks = ready ? pp_stack_table_count(stacks) : 0,
        .stacks_dropped = ready ? pp_stack_table_dropped(stacks) : 0,
        .buckets_dropped = ready ? pp_bucket_table_dropped(buckets) : 0,
        .table_bytes = ready ? tables_bytes : 0,
    };
}
