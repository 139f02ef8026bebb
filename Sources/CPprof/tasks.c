// Live-task registry and fault-tolerant task reads (issue 14, docs/tasks-research.md).
// pp_tasks_record runs inside the swift_task_create hook, pp_tasks_note_enqueued inside the
// runtime's enqueue hooks, pp_tasks_stamp in both: lock-free, no allocation, fault-safe reads only.
// pp_tasks_collect and pp_task_read run outside hooks, on the dumping thread; their `recover` is
// pp_faults_recoverable_here() of that thread (recovering loads, no probe system calls); so does
// pp_task_label_tag.
//
// A task is never retained: an entry is (address, low 32 bits of the task id). It is judged live
// while the word at the address is still the AsyncTask metadata, the id matches, the refcount is
// not deiniting and the status word is plausible; freeing the task usually overwrites the first
// words (malloc's free-list links) and a new task at the same address has another id. This is a
// heuristic, not a proof (docs/tasks-research.md says what would make it sound). A task whose
// status word says it completed is dead too, though a handle may keep its memory.
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "pp_labels.h"
#include "pp_tasks.h"
#include "safe_read.h"

// AsyncTask offsets on 64-bit runtimes with _swift_concurrency_debug_internal_layout_version 1 (checked on Swift 6.3.1); the Swift side refuses
// other versions before calling pp_tasks_set_task_metadata or pp_task_read.
enum {
    TASK_METADATA = 0,
    TASK_REFCOUNT = 8,
    TASK_FLAGS_AND_ID = 32,  // JobFlags (32 bits), then Job::Id (low 32 bits of the task id)
    TASK_RESUME_TASK = 56,
    TASK_RESUME_CONTEXT = 64,
    TASK_PRIVATE = 80,
    PRIVATE_STATUS_FLAGS = 16,  // after ExclusivityAccessSet[2]: ActiveTaskStatus {flags, lock, record}
    PRIVATE_STATUS_RECORD = 24,
    PRIVATE_TASK_LOCALS = 56,  // TaskLocal::Storage: the head item
    PRIVATE_ID_HIGH = 64,
    STATUS_IS_COMPLETE = 0x2000,
    ASYNC_LET_CHILD = 16,
    CONTEXT_PARENT = 0,
    CONTEXT_RESUME_PARENT = 8,
    // TaskLocal::Item: {next and kind (an llvm::PointerIntPair: the kind in bits 1-2)}; a value
    // item adds {key, value type, value (at 24 for a pointer-aligned value)}; a marker adds nothing.
    ITEM_NEXT_AND_KIND = 0,
    ITEM_KEY = 8,
    ITEM_VALUE = 24,
    ITEM_KIND_SHIFT = 1,
    ITEM_POINTER_MASK = 7,
    ITEM_KIND_VALUE = 0,
    ITEM_KIND_VALUE_IN_GROUP_BODY = 1,
    ITEM_KIND_PARENT_TASK_MARKER = 2,  // the rest of the list is an enclosing task's items
    ITEM_KIND_STOP_LOOKUP = 3,         // nothing further is visible
};

#define SLOTS (1u << 17)
#define PROBES 64

typedef struct slot {
    _Atomic uintptr_t task;
    _Atomic uint32_t id;
    // pp_tasks_stamp when the task was created or last enqueued on the global or main executor
    // (in the padding: the slot stays 16 bytes).
    _Atomic uint32_t ready;
} slot;

static slot table[SLOTS];
static _Atomic uintptr_t task_metadata;
static _Atomic uint64_t dropped;
static _Atomic int hooked;

int pp_tasks_enabled_flag = 1;
void pp_tasks_set_enabled(int enabled) { __atomic_store_n(&pp_tasks_enabled_flag, enabled != 0, __ATOMIC_RELAXED); }

void pp_tasks_set_task_metadata(uintptr_t metadata) { atomic_store(&task_metadata, metadata); }
int pp_tasks_hooked(void) { return atomic_load_explicit(&hooked, memory_order_relaxed); }
uint64_t pp_tasks_dropped(void) { return atomic_load_explicit(&dropped, memory_order_relaxed); }

// Stamps are centiseconds since the library loaded, 32 bits (497 days). A stamp is never later than
// its event (the coarse clock lags, the division floors) and the dump's clock is never earlier than
// its reads (the precise clock, rounded up), so now - stamp never understates an age.
enum { NANOSECONDS_PER_STAMP = 10000000 };
static uint64_t epoch_nanoseconds;

static uint64_t nanoseconds(clockid_t clock) {
    struct timespec now;
    clock_gettime(clock, &now);
    return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

__attribute__((constructor)) static void start_task_clock(void) {
    // The coarse clock may lag the precise one by a tick: the epoch must not be later than any stamp.
    epoch_nanoseconds = nanoseconds(CLOCK_MONOTONIC_COARSE);
}

uint32_t pp_tasks_stamp(void) {
    uint64_t now = nanoseconds(CLOCK_MONOTONIC_COARSE);
    return now > epoch_nanoseconds ? (uint32_t)((now - epoch_nanoseconds) / NANOSECONDS_PER_STAMP) : 0;
}

uint64_t pp_tasks_clock(void) {
    uint64_t now = nanoseconds(CLOCK_MONOTONIC);
    return (now - epoch_nanoseconds + NANOSECONDS_PER_STAMP - 1) / NANOSECONDS_PER_STAMP;
}

static inline uint32_t slot_of(uintptr_t task) {
    uint64_t h = (uint64_t)(task >> 4) * 0x9E3779B97F4A7C15ull;
    return (uint32_t)(h >> 40) & (SLOTS - 1);
}

static uint32_t read_id(pp_safe_reader *reader, uintptr_t task) {
    uintptr_t word;
    if (!pp_safe_read(reader, task + TASK_FLAGS_AND_ID, &word)) return 0;
    return (uint32_t)(word >> 32);
}

// Live as far as memory shows: metadata, id and a refcount that is not deiniting.
static int task_is_live(pp_safe_reader *reader, uintptr_t task, uint32_t id) {
    uintptr_t metadata = atomic_load_explicit(&task_metadata, memory_order_relaxed);
    uintptr_t word, refcount;
    if (!metadata || !pp_safe_read(reader, task + TASK_METADATA, &word) || word != metadata) return 0;
    if (!pp_safe_read(reader, task + TASK_REFCOUNT, &refcount)) return 0;
    // 64-bit inline refcount: bit 63 UseSlowRC (side table or immortal), bit 32 IsDeiniting.
    if (!(refcount >> 63) && ((refcount >> 32) & 1)) return 0;
    if (read_id(reader, task) != id) return 0;
    // Freed memory can keep the first words intact (glibc consolidates a freed chunk into its free
    // neighbour without writing into it); the status word then often holds another object's data.
    // Its defined bits are the priority (0-7) and state flags up to 0x4000.
    uintptr_t status, resume_task;
    if (!pp_safe_read(reader, task + TASK_PRIVATE + PRIVATE_STATUS_FLAGS, &status)) return 0;
    if ((uint32_t)status >> 15) return 0;
    // ActiveTaskStatus::IsComplete: finished, its memory kept only by a handle (`Task` value) or
    // an async let not yet ended; its resume fields are stale.
    if ((uint32_t)status & STATUS_IS_COMPLETE) return 0;
    if (!pp_safe_read(reader, task + TASK_RESUME_TASK, &resume_task) || resume_task < 4096) return 0;
    return 1;
}

// Claims the slot holding `expected` for (task, id); 0 if another creator took it first.
static int claim(slot *s, uintptr_t expected, uintptr_t task, uint32_t id, uint32_t created) {
    if (!atomic_compare_exchange_strong(&s->task, &expected, 0)) return 0;
    atomic_store_explicit(&s->id, id, memory_order_relaxed);
    atomic_store_explicit(&s->ready, created, memory_order_relaxed);
    atomic_store_explicit(&s->task, task, memory_order_release);
    return 1;
}

void pp_tasks_record(uintptr_t task, uint32_t created) {
    // Written once: a store per task would bounce this line between the creating cores.
    if (!atomic_load_explicit(&hooked, memory_order_relaxed)) atomic_store_explicit(&hooked, 1, memory_order_relaxed);
    // The new task is fully initialised by the real swift_task_create: its id can be read directly.
    // A plain load: probing the page would cost a system call per task.
    uint32_t id = *(volatile const uint32_t *)(task + TASK_FLAGS_AND_ID + 4);
    uint32_t first = slot_of(task);
    // First pass, no memory read: a free slot, or the slot of a dead task whose memory the new one
    // reuses (malloc hands a freed task's block to the next task, so most creations end here).
    uint32_t index = first;
    for (uint32_t probe = 0; probe < PROBES; probe++, index = (index + 1) & (SLOTS - 1)) {
        uintptr_t old = atomic_load_explicit(&table[index].task, memory_order_acquire);
        if ((old == 0 || old == task) && claim(&table[index], old, task, id, created)) return;
    }
    // The window is full: take the first entry whose task is dead (a page probe per entry judged;
    // dumps free dead entries, so this is rare between them).
    if (!atomic_load_explicit(&task_metadata, memory_order_relaxed)) {
        atomic_fetch_add_explicit(&dropped, 1, memory_order_relaxed);
        return;
    }
    pp_safe_reader reader;
    pp_safe_reader_init(&reader, 0);
    index = first;
    for (uint32_t probe = 0; probe < PROBES; probe++, index = (index + 1) & (SLOTS - 1)) {
        slot *s = &table[index];
        uintptr_t old = atomic_load_explicit(&s->task, memory_order_acquire);
        if ((old == 0 || !task_is_live(&reader, old, atomic_load_explicit(&s->id, memory_order_relaxed))) &&
            claim(s, old, task, id, created))
            return;
    }
    atomic_fetch_add_explicit(&dropped, 1, memory_order_relaxed);
}

void pp_tasks_record_async_let(uintptr_t async_let, uint32_t created) {
    // Only once the layout is checked: then the AsyncLet holds an AsyncLetImpl, a
    // ChildTaskStatusRecord {flags, parent, first child} whose first child is the new task.
    uintptr_t metadata = atomic_load_explicit(&task_metadata, memory_order_relaxed);
    if (!metadata) return;
    uintptr_t task = *(volatile const uintptr_t *)(async_let + ASYNC_LET_CHILD);
    if (task < 4096 || (task & 7) || *(volatile const uintptr_t *)task != metadata) return;
    pp_tasks_record(task, created);
}

void pp_tasks_note_enqueued(uintptr_t job) {
    // The job is live (it is being enqueued), so a plain load: JobFlags, then the id's low half.
    uint64_t flags_and_id = *(volatile const uint64_t *)(job + TASK_FLAGS_AND_ID);
    if ((flags_and_id & 0xFF) != 0) return;  // JobKind::Task is 0; actors' jobs and others are not tasks
    uint32_t id = (uint32_t)(flags_and_id >> 32);
    uint32_t index = slot_of(job);
    // A stale entry of an earlier task at this address may come first: the id tells them apart.
    for (uint32_t probe = 0; probe < PROBES; probe++, index = (index + 1) & (SLOTS - 1)) {
        slot *s = &table[index];
        if (atomic_load_explicit(&s->task, memory_order_relaxed) == job &&
            atomic_load_explicit(&s->id, memory_order_relaxed) == id) {
            atomic_store_explicit(&s->ready, pp_tasks_stamp(), memory_order_relaxed);
            return;
        }
    }
}

size_t pp_tasks_collect(uintptr_t *tasks, uint32_t *ids, uint32_t *ready, size_t capacity, int recover) {
    pp_safe_reader reader;
    pp_safe_reader_init(&reader, recover);
    size_t count = 0;
    for (uint32_t index = 0; index < SLOTS && count < capacity; index++) {
        slot *s = &table[index];
        uintptr_t task = atomic_load_explicit(&s->task, memory_order_acquire);
        if (!task) continue;
        uint32_t id = atomic_load_explicit(&s->id, memory_order_relaxed);
        // Read before the task is: a resume after this only makes the stamp older than it could be.
        uint32_t stamp = atomic_load_explicit(&s->ready, memory_order_relaxed);
        if (!task_is_live(&reader, task, id)) {
            atomic_compare_exchange_strong(&s->task, &task, 0);
            continue;
        }
        tasks[count] = task;
        ids[count] = id;
        ready[count] = stamp;
        count++;
    }
    return count;
}

size_t pp_tasks_registered(void) {
    size_t count = 0;
    for (uint32_t index = 0; index < SLOTS; index++) {
        count += atomic_load_explicit(&table[index].task, memory_order_relaxed) != 0;
    }
    return count;
}

int pp_task_read(uintptr_t task, uint32_t id, pp_task_snapshot *snapshot, uintptr_t *frames,
                 uint32_t capacity, int recover) {
    pp_safe_reader reader;
    pp_safe_reader_init(&reader, recover);
    memset(snapshot, 0, sizeof *snapshot);
    if (!task_is_live(&reader, task, id)) return 0;
    uintptr_t flags_and_id, resume_task, resume_context, record, status, high;
    if (!pp_safe_read(&reader, task + TASK_FLAGS_AND_ID, &flags_and_id) ||
        !pp_safe_read(&reader, task + TASK_RESUME_TASK, &resume_task) ||
        !pp_safe_read(&reader, task + TASK_RESUME_CONTEXT, &resume_context) ||
        !pp_safe_read(&reader, task + TASK_PRIVATE + PRIVATE_STATUS_RECORD, &record) ||
        !pp_safe_read(&reader, task + TASK_PRIVATE + PRIVATE_STATUS_FLAGS, &status) ||
        !pp_safe_read(&reader, task + TASK_PRIVATE + PRIVATE_ID_HIGH, &high))
        return 0;
    snapshot->job_flags = (uint32_t)flags_and_id;
    snapshot->id_low = (uint32_t)(flags_and_id >> 32);
    snapshot->id_high = (uint32_t)high;
    snapshot->status_flags = (uint32_t)status;
    snapshot->resume_task = resume_task;
    snapshot->resume_context = resume_context;
    snapshot->status_record = record;
    uint32_t count = 0;
    if (capacity > 0 && resume_task) frames[count++] = resume_task;
    uintptr_t context = resume_context;
    while (context && count < capacity) {
        uintptr_t parent, resume_parent;
        if (!pp_safe_read(&reader, context + CONTEXT_RESUME_PARENT, &resume_parent) ||
            !pp_safe_read(&reader, context + CONTEXT_PARENT, &parent))
            break;
        // A continuation context's ResumeParent is the task's ResumeTask: do not show it twice.
        if (!(count == 1 && resume_parent == resume_task) && resume_parent) frames[count++] = resume_parent;
        if (parent == context) break;
        context = parent;
    }
    snapshot->frame_count = count;
    // The same header after the walk: the task did not resume (or finish) while we read it.
    uintptr_t again_task, again_context;
    if (!task_is_live(&reader, task, id) ||
        !pp_safe_read(&reader, task + TASK_RESUME_TASK, &again_task) ||
        !pp_safe_read(&reader, task + TASK_RESUME_CONTEXT, &again_context))
        return 0;
    return (again_task == resume_task && again_context == resume_context) ? 1 : 2;
}

// Status records: {size_t flags (kind in bits 0-7), parent}; the SE-0469 name record (kind 6 on
// this layout) adds the name's C string. The name is an initial record, so it is the outermost.
size_t pp_task_read_name(uintptr_t task, uint32_t id, char *name, size_t capacity, int recover) {
    pp_safe_reader reader;
    pp_safe_reader_init(&reader, recover);
    if (capacity == 0 || !task_is_live(&reader, task, id)) return 0;
    uintptr_t record;
    if (!pp_safe_read(&reader, task + TASK_PRIVATE + PRIVATE_STATUS_RECORD, &record)) return 0;
    for (int depth = 0; record && depth < 32; depth++) {
        uintptr_t flags, parent, string;
        if (!pp_safe_read(&reader, record, &flags) || !pp_safe_read(&reader, record + 8, &parent)) return 0;
        if ((flags & 0xFF) == 6) {
            if (!pp_safe_read(&reader, record + 16, &string) || (string & 7) != 0) return 0;
            size_t length = 0;
            for (uintptr_t word_address = string; length + 1 < capacity; word_address += 8) {
                uintptr_t word;
                if (!pp_safe_read(&reader, word_address, &word)) return 0;
                for (int byte = 0; byte < 8 && length + 1 < capacity; byte++) {
                    char c = (char)(word >> (8 * byte));
                    if (c == 0) {
                        name[length] = 0;
                        return length;
                    }
                    name[length++] = c;
                }
            }
            name[length] = 0;
            return length;
        }
        record = parent;
    }
    return 0;
}

// The pointer-sized value bound to `key` in the task's task-local list (the innermost binding,
// through the markers into enclosing tasks' items, as the runtime's lookup goes), or 0.
static uintptr_t task_local_value(pp_safe_reader *reader, uintptr_t task, uintptr_t key) {
    uintptr_t item;
    if (!pp_safe_read(reader, task + TASK_PRIVATE + PRIVATE_TASK_LOCALS, &item)) return 0;
    for (int depth = 0; item && depth < 256; depth++) {
        uintptr_t next_and_kind, item_key, value;
        if ((item & ITEM_POINTER_MASK) || !pp_safe_read(reader, item + ITEM_NEXT_AND_KIND, &next_and_kind))
            return 0;
        switch ((next_and_kind >> ITEM_KIND_SHIFT) & 3) {
        case ITEM_KIND_VALUE:
        case ITEM_KIND_VALUE_IN_GROUP_BODY:
            if (!pp_safe_read(reader, item + ITEM_KEY, &item_key)) return 0;
            if (item_key == key) {
                return pp_safe_read(reader, item + ITEM_VALUE, &value) && !(value & 7) ? value : 0;
            }
            break;
        case ITEM_KIND_PARENT_TASK_MARKER:
            break;
        case ITEM_KIND_STOP_LOOKUP:
            return 0;
        }
        item = next_and_kind & ~(uintptr_t)ITEM_POINTER_MASK;
    }
    return 0;
}

uint64_t pp_task_label_tag(uintptr_t task, int recover) {
    uintptr_t key = (uintptr_t)pp_labels_task_local_key();
    if (!key) return 0;
    pp_safe_reader reader;
    pp_safe_reader_init(&reader, recover);
    uintptr_t object = task_local_value(&reader, task, key);
    if (!object || !pp_labels_dump_hold((void *)object)) return 0;
    // Bound again after the hold began: alive then (the binding retains it), and its deinit waits
    // for the release. Not bound any more: it may be gone, so it is not touched.
    uint64_t tag = task_local_value(&reader, task, key) == object ? pp_labels_dump_mark((void *)object) : 0;
    pp_labels_dump_release((void *)object);
    return tag;
}
