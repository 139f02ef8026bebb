// Profiler labels as seen from signal handlers.
//
// A label set in force is a Swift object (Pprof's LabelStorage) that embeds a pp_label_node at a
// fixed offset. It is in force on a thread through the task-local that withProfileLabels binds
// (read with the Concurrency runtime's swift_task_localValueGet) or through the thread's own slot
// (ProfileLabels.setForCurrentThread). The handler reads the node's tag and marks the node
// sampled; sampled nodes are pushed on a lock-free stack that the Swift side drains, so tags stay
// resolvable after the label set dies (see LabelTags.swift).
#ifndef PP_LABELS_H
#define PP_LABELS_H

#include <stdint.h>

// Embedded in every label-set object. Written by the Swift side before the object is published,
// then only through the functions below.
typedef struct pp_label_node {
    uint64_t tag;                // nonzero and never reused in the process's life
    struct pp_label_node *next;  // link on the sampled stack
    uint32_t sampled;            // 0 until a handler has returned `tag`; never reset
    uint32_t reserved;
} pp_label_node;

// Embedded in every label-set object next to its node; never read by handlers. `slots` hold
// (retained) sets that were made by merging other labels into this one, so that entering the same
// nested scope again finds the merged set instead of building it; each slot is written once and
// released with the set. A merged set records what was merged in, for that lookup.
#define PP_LABEL_MERGE_CACHE_SLOTS 2
typedef struct pp_label_merge_cache {
    void *slots[PP_LABEL_MERGE_CACHE_SLOTS];
    uint64_t merged_in_tag;        // for a merged set: the tag of the set merged in, else 0
    uint64_t merged_in_positions;  // bit i: pair i came from that set (0 if it has > 64 pairs)
} pp_label_merge_cache;

// The set in cache slot `index` (not retained), or NULL.
static inline void *pp_label_merge_cache_get(pp_label_merge_cache *cache, int index) {
    return __atomic_load_n(&cache->slots[index], __ATOMIC_ACQUIRE);
}

// Stores `object` (retained by the caller) in the first empty slot: 1 if stored, 0 if all are
// taken (the caller keeps its reference).
static inline int pp_label_merge_cache_publish(pp_label_merge_cache *cache, void *object) {
    for (int index = 0; index < PP_LABEL_MERGE_CACHE_SLOTS; index++) {
        void *expected = 0;
        if (__atomic_compare_exchange_n(&cache->slots[index], &expected, object, 0, __ATOMIC_RELEASE,
                                        __ATOMIC_RELAXED)) {
            return 1;
        }
    }
    return 0;
}

// The label-set tag in force on the calling thread (for a Swift task: the task's), 0 for none.
// Async-signal-safe: no locks, no allocation, no syscalls, errno untouched. Marks the set sampled.
uint64_t pp_labels_current(void);

// --- Setup and Swift-side bookkeeping; none of these run in a handler. ---

// Publishes the task-local's key object and the metadata of its value type (an optional reference
// to a label-set object: one pointer, NULL for none), the offset from a label-set object to its
// node, and the function that releases a thread's label set when the thread exits. Call once,
// before any label set is bound or handlers may need labels. Returns 1 if handlers can read task
// labels, 0 if only thread labels (the Concurrency runtime is missing, its thread-local storage is
// not static (see labels.c), or the environment variable PPROF_TASK_LABELS=off, a switch for
// toolchains not verified, says so).
int pp_labels_install(const void *task_local_key, const void *value_type, intptr_t node_offset,
                      void (*release_object)(void *));

// 1 if handlers read task labels (pp_labels_install returned 1), else 0.
int pp_labels_task_labels_readable(void);

// Why handlers cannot read task labels (a static string), or NULL if they can.
const char *pp_labels_task_labels_unreadable_reason(void);

// The label-set object in force on the calling thread (not retained; same rules as
// pp_labels_current, without marking it sampled), or NULL. Only when task labels are readable.
void *pp_labels_object_in_force(void);

// 1 if the calling thread is running a Swift task (swift_task_getCurrent() != NULL), else 0. No
// reference counting, unlike withUnsafeCurrentTask.
int pp_labels_task_running(void);

// A fresh tag: nonzero, unique for the life of the process. Cheap: per-thread blocks.
uint64_t pp_labels_next_tag(void);

// Replaces the calling thread's label set (a retained object pointer, or NULL) and returns the
// previous one, which the caller now owns. The set is released when the thread exits.
void *pp_labels_thread_exchange(void *object);

// Binds the installed task-local to `object` (a label-set object, retained by the caller; the
// binding takes that reference over) for the current task, or for the thread outside tasks, until
// the matching pp_labels_unbind, which releases it: what TaskLocal.withValue does on entry and on
// exit (swift_task_localValuePush / swift_task_localValuePop).
void pp_labels_bind(void *object);
void pp_labels_unbind(void);

// The calling thread's label-set object (not retained), or NULL.
void *pp_labels_thread_get(void);

// 1 once a handler has returned the node's tag.
uint32_t pp_label_node_sampled(const pp_label_node *node);

// Takes every node sampled since the last call, as a NULL-terminated chain through `next`.
pp_label_node *pp_labels_take_sampled(void);

// --- Labels of suspended tasks (goroutine dumps; never in handlers) ---
//
// A dump reads a suspended task's label set out of the task's task-local storage, while the task
// may resume on another thread, pop that binding and release the set. So the dump holds the set
// in a slot that the set's deinit waits on, then reads the binding again: found again, the set
// was alive after the hold began and stays alive until the hold ends.

// The key of the task-local that withProfileLabels binds, or NULL before pp_labels_install.
const void *pp_labels_task_local_key(void);

// Holds `object` for a dump: 1, or 0 when every hold slot is taken (the dump skips its labels).
int pp_labels_dump_hold(void *object);

// Marks a held set sampled (as a handler would) and returns its tag.
uint64_t pp_labels_dump_mark(void *object);

// Ends the hold of `object`.
void pp_labels_dump_release(void *object);

// Called by a label set's deinit before it looks at `sampled`: waits while a dump holds it.
void pp_labels_wait_for_dumps(const void *object);

#endif
