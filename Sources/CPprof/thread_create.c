// Thread-creation records. pp_thread_create_record runs inside the pthread_create hook: it only
// uses the lock-free tables (and maps them once, on first use, with a CAS so racing creators agree;
// it never waits for another thread).
#include <stddef.h>
#include <sys/mman.h>

#include "pp_tables.h"
#include "pp_thread_create.h"

#define STACK_CAPACITY 4096
#define FRAME_CAPACITY (STACK_CAPACITY * 32)

static pp_stack_table *stacks;
static pp_bucket_table *buckets;
static int64_t total;
static int64_t dropped;

// Creates both tables on first use; a creator that loses the race frees its own.
static int ensure_tables(void) {
    if (__atomic_load_n(&buckets, __ATOMIC_ACQUIRE)) return 1;
    pp_stack_table *new_stacks = pp_stack_table_create(STACK_CAPACITY, FRAME_CAPACITY);
    pp_bucket_table *new_buckets = pp_bucket_table_create(STACK_CAPACITY);
    if (!new_stacks || !new_buckets) return 0;  // (leaks the other on failure: mmap failed anyway)
    pp_stack_table *no_stacks = NULL;
    if (__atomic_compare_exchange_n(&stacks, &no_stacks, new_stacks, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        __atomic_store_n(&buckets, new_buckets, __ATOMIC_RELEASE);
        return 1;
    }
    // Another thread won; ours are left mapped but unused (at most once per process, in a race of
    // first creations). Its bucket table appears an instant later; never wait for it: a fork in that
    // instant leaves a child whose winner never publishes, and every pthread_create there would spin.
    // Until it appears, this record is dropped (and counted).
    return __atomic_load_n(&buckets, __ATOMIC_ACQUIRE) != NULL;
}

void pp_thread_create_record(const uintptr_t *pcs, int depth, unsigned flags) {
    __atomic_add_fetch(&total, 1, __ATOMIC_RELAXED);
    if (!ensure_tables()) {
        __atomic_add_fetch(&dropped, 1, __ATOMIC_RELAXED);
        return;
    }
    pp_stack_table *table = __atomic_load_n(&stacks, __ATOMIC_ACQUIRE);
    uint32_t id = pp_stack_table_intern(table, pcs, depth);
    int64_t *counters = id ? pp_bucket_table_counters(__atomic_load_n(&buckets, __ATOMIC_ACQUIRE), id) : NULL;
    if (!counters) {
        __atomic_add_fetch(&dropped, 1, __ATOMIC_RELAXED);
        return;
    }
    __atomic_add_fetch(&counters[0], 1, __ATOMIC_RELAXED);
    __atomic_or_fetch(&counters[1], (int64_t)flags, __ATOMIC_RELAXED);
}

struct visit {
    pp_thread_create_visitor visitor;
    void *context;
    pp_stack_table *stacks;
};

static void visit_bucket(void *context, uint64_t key, const int64_t *counters) {
    struct visit *visit = context;
    const uintptr_t *pcs = NULL;
    int depth = pp_stack_table_get(visit->stacks, (uint32_t)key, &pcs);
    if (counters[0] > 0) visit->visitor(visit->context, pcs, depth, counters[0], (unsigned)counters[1]);
}

void pp_thread_create_visit(pp_thread_create_visitor visitor, void *context) {
    pp_bucket_table *table = __atomic_load_n(&buckets, __ATOMIC_ACQUIRE);
    if (!table) return;
    struct visit visit = {visitor, context, __atomic_load_n(&stacks, __ATOMIC_ACQUIRE)};
    pp_bucket_table_visit(table, visit_bucket, &visit);
}

int64_t pp_thread_create_total(void) { return __atomic_load_n(&total, __ATOMIC_RELAXED); }

int64_t pp_thread_create_dropped(void) { return __atomic_load_n(&dropped, __ATOMIC_RELAXED); }
