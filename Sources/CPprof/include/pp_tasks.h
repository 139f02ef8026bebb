// Registry of live Swift tasks for the goroutine profile (issue 14). pp_tasks_record runs inside
// the swift_task_create hook (PprofHooks); everything else runs outside any hook or handler.
#ifndef PP_TASKS_H
#define PP_TASKS_H

#include <stddef.h>
#include <stdint.h>

// Set once from Swift after the layout check passes: the runtime's AsyncTask heap metadata. Until
// then the hook records tasks without judging which older entries are dead.
void pp_tasks_set_task_metadata(uintptr_t metadata);

// Recording on (default) or off; off, the hook only forwards (for side-by-side cost runs).
void pp_tasks_set_enabled(int enabled);
static inline int pp_tasks_enabled(void) {
    extern int pp_tasks_enabled_flag;
    return __atomic_load_n(&pp_tasks_enabled_flag, __ATOMIC_RELAXED);
}

// Called by the swift_task_create hook with each new task and the stamp taken before it was
// created. Lock-free, no allocation.
void pp_tasks_record(uintptr_t task, uint32_t created);

// Called by the swift_asyncLet_begin hook with the AsyncLet it began (and the stamp taken before):
// records its child task once the layout is checked (until then, nothing). Lock-free, no allocation.
void pp_tasks_record_async_let(uintptr_t async_let, uint32_t created);

// Called by the runtime's global- and main-executor enqueue hooks with each job: a recorded task
// being enqueued is about to resume, so its ready stamp moves to now. Lock-free, no allocation.
void pp_tasks_note_enqueued(uintptr_t job);

// Now on the stamp clock: centiseconds since the library loaded, from CLOCK_MONOTONIC_COARSE,
// rounded down (32 bits). Async-signal-safe.
uint32_t pp_tasks_stamp(void);

// Now on the same scale from the precise clock, rounded up, 64 bits: never earlier than a stamp
// taken before it. Ages are pp_tasks_clock() - stamp, exact while this is below 2^32.
uint64_t pp_tasks_clock(void);

// 1 once a hook has called pp_tasks_record (the interposition is in effect).
int pp_tasks_hooked(void);

// Tasks the full table could not hold.
uint64_t pp_tasks_dropped(void);

// Copies up to `capacity` recorded (task, 32-bit id, ready stamp) triples; dead entries found on
// the way are freed. Returns how many were copied. `recover` (here and below):
// pp_faults_recoverable_here() of the calling thread, asked once per dump; 1 makes the reads
// recovering loads instead of probes.
size_t pp_tasks_collect(uintptr_t *tasks, uint32_t *ids, uint32_t *ready, size_t capacity, int recover);

// Entries in the registry now, live or not yet found dead (for tests: after pp_tasks_collect,
// only live tasks remain).
size_t pp_tasks_registered(void);

// One task read fault-tolerantly.
typedef struct pp_task_snapshot {
    uint32_t job_flags;
    uint32_t id_low;
    uint32_t id_high;
    uint32_t status_flags;
    uintptr_t resume_task;
    uintptr_t resume_context;
    uintptr_t status_record;
    uint32_t frame_count;
} pp_task_snapshot;

// Reads `task` (recorded with `id`) and the resume addresses of its async frame chain into
// `frames` (innermost first, up to `capacity`). Returns 1 when the task was live and its header
// unchanged across the read (a consistent suspended snapshot), 2 when live but it moved while
// being read (frames untrustworthy), 0 when dead or unreadable.
int pp_task_read(uintptr_t task, uint32_t id, pp_task_snapshot *snapshot, uintptr_t *frames,
                 uint32_t capacity, int recover);

// The task's SE-0469 name (`Task(name:)`) into `name` (NUL-terminated, truncated to `capacity`);
// returns its length, 0 when the task has none or is gone.
size_t pp_task_read_name(uintptr_t task, uint32_t id, char *name, size_t capacity, int recover);

// The tag of the profiler label set a suspended task has bound with withProfileLabels (its own or
// an enclosing task's), or 0. Read fault-tolerantly; the set is held while it is marked (see
// pp_labels.h), so a task that resumes meanwhile gives 0 or its new set, never a freed one.
uint64_t pp_task_label_tag(uintptr_t task, int recover);

#endif
