// Lock-free stack and bucket tables. pp_stack_table_intern, pp_stack_table_get,
// pp_bucket_table_counters and the *_dropped/_count readers run inside signal handlers and
// malloc/lock hooks: no allocation, no locks, no libc calls. Creation (mmap) does not.
#include "pp_tables.h"

#include <stddef.h>
#include <sys/mman.h>

#include "arch.h"

// Slot states of the stack table: 0 empty, BUSY while its frames are being copied, DEAD if claimed
// when the table had no room left (skipped by probes, never matched), else the id.
#define SLOT_BUSY 0xffffffffu
#define SLOT_DEAD 0xfffffffeu

struct stack_slot {
    uint64_t hash;
    uint32_t state;
    uint32_t frames_offset;
    uint32_t frame_count;
    uint32_t padding;
};

struct pp_stack_table {
    uint32_t slot_mask;
    uint32_t capacity;
    uint32_t frame_capacity;
    uint32_t count;
    uint32_t frames_used;
    uint64_t dropped;
    struct stack_slot *slots;
    uint32_t *ids_to_slots;  // id - 1 -> slot index
    uintptr_t *frames;
};

static void *map_zeroed(size_t size) {
    void *memory = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return memory == MAP_FAILED ? NULL : memory;
}

static uint32_t next_power_of_two(uint32_t value) {
    uint32_t result = 1;
    while (result < value) result <<= 1;
    return result;
}

pp_stack_table *pp_stack_table_create(uint32_t capacity, uint32_t frame_capacity) {
    uint32_t slots = next_power_of_two(capacity * 2);
    size_t size = sizeof(pp_stack_table) + sizeof(struct stack_slot) * slots + sizeof(uint32_t) * capacity +
                  sizeof(uintptr_t) * frame_capacity + 64;
    char *memory = map_zeroed(size);
    if (!memory) return NULL;
    pp_stack_table *table = (pp_stack_table *)memory;
    table->slot_mask = slots - 1;
    table->capacity = capacity;
    table->frame_capacity = frame_capacity;
    table->slots = (struct stack_slot *)(memory + sizeof(pp_stack_table));
    table->ids_to_slots = (uint32_t *)(table->slots + slots);
    table->frames = (uintptr_t *)(((uintptr_t)(table->ids_to_slots + capacity) + 7) & ~(uintptr_t)7);
    return table;
}

static uint64_t hash_stack(const uintptr_t *pcs, int count) {
    uint64_t hash = 0x9e3779b97f4a7c15ull ^ (uint64_t)count;
    for (int i = 0; i < count; i++) {
        hash ^= (uint64_t)pcs[i];
        hash *= 0xff51afd7ed558ccdull;
        hash ^= hash >> 33;
    }
    return hash ? hash : 1;
}

static int same_frames(const uintptr_t *a, const uintptr_t *b, int count) {
    for (int i = 0; i < count; i++)
        if (a[i] != b[i]) return 0;
    return 1;
}

uint32_t pp_stack_table_intern(pp_stack_table *table, const uintptr_t *pcs, int count) {
    if (!table || count < 0) return 0;
    uint64_t hash = hash_stack(pcs, count);
    for (uint32_t probe = 0; probe <= table->slot_mask; probe++) {
        struct stack_slot *slot = &table->slots[(hash + probe) & table->slot_mask];
        uint32_t state = __atomic_load_n(&slot->state, __ATOMIC_ACQUIRE);
        if (state == 0) {
            // Full: drop without claiming the slot. A claimed slot would stay BUSY forever, and once
            // every slot was BUSY each new stack would probe the whole table.
            if (__atomic_load_n(&table->count, __ATOMIC_RELAXED) >= table->capacity ||
                (uint64_t)__atomic_load_n(&table->frames_used, __ATOMIC_RELAXED) + (uint64_t)count >
                    table->frame_capacity)
                break;
            uint32_t expected = 0;
            if (!__atomic_compare_exchange_n(&slot->state, &expected, SLOT_BUSY, 0, __ATOMIC_ACQ_REL,
                                             __ATOMIC_ACQUIRE)) {
                state = expected;
            } else {
                // Claimed: reserve an id and frame space, copy, publish.
                uint32_t id = __atomic_add_fetch(&table->count, 1, __ATOMIC_RELAXED);
                uint32_t offset = __atomic_fetch_add(&table->frames_used, (uint32_t)count, __ATOMIC_RELAXED);
                if (id > table->capacity || (uint64_t)offset + (uint64_t)count > table->frame_capacity) {
                    // Out of room (another writer took the last of it since the check above): the
                    // stack is dropped and the slot retired. Left BUSY, it would make every later
                    // probe through it spin for the writer that never publishes.
                    __atomic_store_n(&slot->state, SLOT_DEAD, __ATOMIC_RELEASE);
                    __atomic_add_fetch(&table->dropped, 1, __ATOMIC_RELAXED);
                    return 0;
                }
                for (int i = 0; i < count; i++) table->frames[offset + i] = pcs[i];
                slot->hash = hash;
                slot->frames_offset = offset;
                slot->frame_count = (uint32_t)count;
                table->ids_to_slots[id - 1] = (uint32_t)(slot - table->slots);
                __atomic_store_n(&slot->state, id, __ATOMIC_RELEASE);
                return id;
            }
        }
        if (state == SLOT_BUSY) {
            // Another writer is filling it. Wait a bounded moment for it to publish: the writer may be
            // the very thread this handler interrupted, which cannot finish until we return. If it
            // does not publish in time, keep probing (the stack may then get a second id, so readers
            // aggregate by frames, not by id).
            for (int spin = 0; spin < 2000 && state == SLOT_BUSY; spin++) {
                pp_cpu_relax();
                state = __atomic_load_n(&slot->state, __ATOMIC_ACQUIRE);
            }
            if (state == SLOT_BUSY) continue;
        }
        if (state == SLOT_DEAD) continue;
        if (slot->hash == hash && slot->frame_count == (uint32_t)count &&
            same_frames(table->frames + slot->frames_offset, pcs, count))
            return state;
    }
    __atomic_add_fetch(&table->dropped, 1, __ATOMIC_RELAXED);
    return 0;
}

int pp_stack_table_get(const pp_stack_table *table, uint32_t id, const uintptr_t **pcs) {
    if (!table || id == 0 || id > pp_stack_table_count(table)) return 0;
    uint32_t slot_index = __atomic_load_n(&table->ids_to_slots[id - 1], __ATOMIC_ACQUIRE);
    const struct stack_slot *slot = &table->slots[slot_index];
    if (__atomic_load_n(&slot->state, __ATOMIC_ACQUIRE) != id) return 0;
    *pcs = table->frames + slot->frames_offset;
    return (int)slot->frame_count;
}

uint32_t pp_stack_table_count(const pp_stack_table *table) {
    if (!table) return 0;
    uint32_t count = __atomic_load_n(&table->count, __ATOMIC_ACQUIRE);
    return count > table->capacity ? table->capacity : count;
}

uint64_t pp_stack_table_dropped(const pp_stack_table *table) {
    return table ? __atomic_load_n(&table->dropped, __ATOMIC_RELAXED) : 0;
}

// Bucket table: open addressing on the key; a slot's key goes 0 -> key once and never changes.
struct bucket {
    uint64_t key;
    int64_t counters[PP_BUCKET_COUNTERS];
};

struct pp_bucket_table {
    uint32_t mask;
    uint32_t capacity;
    uint32_t used;
    uint32_t padding;
    uint64_t dropped;
    struct bucket *buckets;
};

pp_bucket_table *pp_bucket_table_create(uint32_t capacity) {
    uint32_t slots = next_power_of_two(capacity * 2);
    size_t size = sizeof(pp_bucket_table) + sizeof(struct bucket) * slots + 64;
    char *memory = map_zeroed(size);
    if (!memory) return NULL;
    pp_bucket_table *table = (pp_bucket_table *)memory;
    table->mask = slots - 1;
    table->capacity = capacity;
    table->buckets = (struct bucket *)(((uintptr_t)(memory + sizeof(pp_bucket_table)) + 63) & ~(uintptr_t)63);
    return table;
}

static uint64_t mix64(uint64_t key) {
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdull;
    key ^= key >> 33;
    return key;
}

int64_t *pp_bucket_table_counters(pp_bucket_table *table, uint64_t key) {
    if (!table || key == 0) return NULL;
    uint64_t start = mix64(key);
    for (uint32_t probe = 0; probe <= table->mask; probe++) {
        struct bucket *bucket = &table->buckets[(start + probe) & table->mask];
        uint64_t current = __atomic_load_n(&bucket->key, __ATOMIC_ACQUIRE);
        if (current == key) return bucket->counters;
        if (current == 0) {
            if (__atomic_load_n(&table->used, __ATOMIC_RELAXED) >= table->capacity) break;
            uint64_t expected = 0;
            if (__atomic_compare_exchange_n(&bucket->key, &expected, key, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
                __atomic_add_fetch(&table->used, 1, __ATOMIC_RELAXED);
                return bucket->counters;
            }
            if (expected == key) return bucket->counters;
        }
    }
    __atomic_add_fetch(&table->dropped, 1, __ATOMIC_RELAXED);
    return NULL;
}

void pp_bucket_table_visit(const pp_bucket_table *table, pp_bucket_visitor visitor, void *context) {
    if (!table) return;
    for (uint32_t i = 0; i <= table->mask; i++) {
        const struct bucket *bucket = &table->buckets[i];
        uint64_t key = __atomic_load_n(&bucket->key, __ATOMIC_ACQUIRE);
        if (key == 0) continue;
        int64_t snapshot[PP_BUCKET_COUNTERS];
        for (int c = 0; c < PP_BUCKET_COUNTERS; c++)
            snapshot[c] = __atomic_load_n(&bucket->counters[c], __ATOMIC_RELAXED);
        visitor(context, key, snapshot);
    }
}

uint64_t pp_bucket_table_dropped(const pp_bucket_table *table) {
    return table ? __atomic_load_n(&table->dropped, __ATOMIC_RELAXED) : 0;
}

void pp_bucket_table_reset(pp_bucket_table *table) {
    if (!table) return;
    for (uint32_t i = 0; i <= table->mask; i++)
        for (int c = 0; c < PP_BUCKET_COUNTERS; c++)
            __atomic_store_n(&table->buckets[i].counters[c], 0, __ATOMIC_RELAXED);
}
