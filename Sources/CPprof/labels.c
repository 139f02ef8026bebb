// Label tags for handlers. Only pp_labels_current (and the static functions it calls) runs inside
// signal handlers: it makes no syscall, takes no lock, allocates nothing and leaves errno alone.
// Everything else runs in ordinary Swift-side code (pp_labels_object_in_force shares the handler's
// lookup).
//
// How a handler finds the labels of the Swift task running on the interrupted thread: it calls the
// Concurrency runtime's swift_task_localValueGet(key) with the key of the task-local that
// withProfileLabels binds. On the toolchain this was verified against (Swift 6.3.1 on x86_64, by
// disassembly and by single-stepping; see docs/labels.md), that function and swift_task_getCurrent
// are pure reads: the runtime's thread-local "current task" (or the thread's fallback task-local storage
// when no task runs) and a walk of the task's task-local list. The runtime publishes a list item
// only after it is fully built and unlinks it before destroying its value, so a handler that
// interrupts a push or pop sees either the old or the new list, never a half-built item; the items
// of a parent task that children read stay alive until the children end (structured concurrency).
// The runtime's thread-locals are reached through __tls_get_addr, whose fast path is three loads
// when the runtime's TLS is static (a library loaded at startup, which pp_labels_install checks).
// Its slow path runs only on a thread's first TLS access after a dlopen/dlclose of a library with
// TLS; there glibc updates the thread's DTV without locks, and allocates or frees only if more than
// 14 such libraries were loaded since the thread started or one whose TLS this thread used was
// unloaded. That residual case is documented rather than guarded: nothing cheaper than the runtime's
// own read can tell.
#include <elf.h>
#include <link.h>
#include <pthread.h>
#include <sched.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "pp_labels.h"

// The Concurrency runtime's entry points (swiftcc; these signatures are register-compatible with
// the runtime's). Weak: resolved at load time through the GOT, also when the runtime is linked
// statically, and never through a lazily bound PLT slot from the handler.
extern void *swift_task_getCurrent(void) __attribute__((weak, swiftcall));
extern void *swift_task_localValueGet(const void *key) __attribute__((weak, swiftcall));
extern void swift_task_localValuePush(const void *key, void *value, const void *type)
    __attribute__((weak, swiftcall));
extern void swift_task_localValuePop(void) __attribute__((weak, swiftcall));

typedef void *(*get_current_fn)(void) __attribute__((swiftcall));
typedef void *(*local_value_get_fn)(const void *key) __attribute__((swiftcall));

// Written once by pp_labels_install before `installed` is published (release).
static get_current_fn get_current;
static local_value_get_fn local_value_get;
static const void *task_local_key;
static const void *task_local_value_type;
static intptr_t node_offset;
static void (*release_thread_object)(void *);
static pthread_key_t thread_exit_key;
static int installed;           // node_offset and the thread slot are usable
static int task_labels_usable;  // get_current/local_value_get are usable in handlers
static const char *unreadable_reason = "labels not installed";  // when task labels are not usable

// The calling thread's label-set object (retained by the Swift side). Initial-exec: a handler
// reads it with one load from the thread pointer.
static __thread void *thread_object __attribute__((tls_model("initial-exec")));
static __thread int thread_exit_armed __attribute__((tls_model("initial-exec")));

// Tags come in per-thread blocks from one counter; tag 0 is never issued.
#define TAG_BLOCK 1024
static uint64_t next_tag_block = 1;
static __thread uint64_t thread_tag_next __attribute__((tls_model("initial-exec")));
static __thread uint64_t thread_tag_end __attribute__((tls_model("initial-exec")));

// Nodes sampled since the Swift side last took them (Treiber stack; pushes only, whole-stack takes).
static pp_label_node *sampled_head;

static uint64_t tag_of(void *object) {
    pp_label_node *node = (pp_label_node *)((char *)object + node_offset);
    if (!__atomic_load_n(&node->sampled, __ATOMIC_RELAXED) &&
        !__atomic_exchange_n(&node->sampled, 1, __ATOMIC_ACQ_REL)) {
        pp_label_node *head = __atomic_load_n(&sampled_head, __ATOMIC_RELAXED);
        do {
            node->next = head;
        } while (!__atomic_compare_exchange_n(&sampled_head, &head, node, 1, __ATOMIC_RELEASE,
                                              __ATOMIC_RELAXED));
    }
    return node->tag;
}

// The label-set object in force on this thread (not retained), or NULL.
static void *object_in_force(void) {
    if (!__atomic_load_n(&task_labels_usable, __ATOMIC_RELAXED)) {
        return __atomic_load_n(&thread_object, __ATOMIC_RELAXED);
    }
    // Inside a task only the task's labels count; outside, a withProfileLabels scope (the
    // runtime's fallback storage) wins over the thread's own labels.
    void *task = get_current();
    void **value = (void **)local_value_get(task_local_key);
    if (value && *value) return *value;
    return task ? NULL : __atomic_load_n(&thread_object, __ATOMIC_RELAXED);
}

uint64_t pp_labels_current(void) {
    if (!__atomic_load_n(&installed, __ATOMIC_ACQUIRE)) return 0;
    void *object = object_in_force();
    return object ? tag_of(object) : 0;
}

// --- Not in handlers below this line. ---

static void thread_exit(void *unused) {
    (void)unused;
    thread_exit_armed = 0;
    void *object = pp_labels_thread_exchange(NULL);
    if (object && release_thread_object) release_thread_object(object);
}

struct tls_probe {
    uintptr_t address;  // an address inside the runtime's image
    int found;
    size_t tls_modid;
    void *tls_data;
};

static int probe_image(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    struct tls_probe *probe = data;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *phdr = &info->dlpi_phdr[i];
        if (phdr->p_type != PT_LOAD) continue;
        uintptr_t start = info->dlpi_addr + phdr->p_vaddr;
        if (probe->address >= start && probe->address < start + phdr->p_memsz) {
            probe->found = 1;
            probe->tls_modid = info->dlpi_tls_modid;
            probe->tls_data = info->dlpi_tls_data;
            return 1;
        }
    }
    return 0;
}

static void *probe_thread(void *argument) {
    dl_iterate_phdr(probe_image, argument);
    return NULL;
}

// True if the runtime's thread-locals need no allocation on first access by a thread: the image
// has no TLS, or its TLS is static (allocated with every thread). Asked on a new thread that has
// never touched the runtime's TLS, where glibc reports a dynamic block as not yet allocated.
static int runtime_tls_is_static(void) {
    struct tls_probe probe = {.address = (uintptr_t)(void *)swift_task_getCurrent};
    pthread_t thread;
    if (pthread_create(&thread, NULL, probe_thread, &probe) != 0) return 0;
    pthread_join(thread, NULL);
    return probe.found && (probe.tls_modid == 0 || probe.tls_data != NULL);
}

int pp_labels_install(const void *key, const void *value_type, intptr_t offset,
                      void (*release_object)(void *)) {
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&lock);
    if (!__atomic_load_n(&installed, __ATOMIC_RELAXED)) {
        task_local_key = key;
        task_local_value_type = value_type;
        node_offset = offset;
        release_thread_object = release_object;
        pthread_key_create(&thread_exit_key, thread_exit);
        const char *disable = getenv("PPROF_TASK_LABELS");
        if (disable && strcmp(disable, "off") == 0) {
            unreadable_reason = "PPROF_TASK_LABELS=off";
        } else if (!swift_task_getCurrent || !swift_task_localValueGet) {
            unreadable_reason = "the Swift Concurrency runtime is not linked";
        } else if (!runtime_tls_is_static()) {
            unreadable_reason = "the Swift Concurrency runtime's thread-local storage is not static";
        } else {
            get_current = swift_task_getCurrent;
            local_value_get = swift_task_localValueGet;
            // Touch the runtime's TLS from here once, so no handler is the first caller.
            (void)local_value_get(task_local_key);
            __atomic_store_n(&task_labels_usable, 1, __ATOMIC_RELAXED);
        }
        __atomic_store_n(&installed, 1, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&lock);
    return __atomic_load_n(&task_labels_usable, __ATOMIC_RELAXED);
}

const char *pp_labels_task_labels_unreadable_reason(void) {
    return pp_labels_task_labels_readable() ? NULL : unreadable_reason;
}

int pp_labels_task_labels_readable(void) {
    return __atomic_load_n(&installed, __ATOMIC_ACQUIRE) &&
           __atomic_load_n(&task_labels_usable, __ATOMIC_RELAXED);
}

void *pp_labels_object_in_force(void) {
    return pp_labels_task_labels_readable() ? object_in_force() : NULL;
}

int pp_labels_task_running(void) { return swift_task_getCurrent && swift_task_getCurrent() != NULL; }

uint64_t pp_labels_next_tag(void) {
    if (thread_tag_next == thread_tag_end) {
        thread_tag_next = __atomic_fetch_add(&next_tag_block, TAG_BLOCK, __ATOMIC_RELAXED);
        thread_tag_end = thread_tag_next + TAG_BLOCK;
    }
    return thread_tag_next++;
}

void *pp_labels_thread_exchange(void *object) {
    void *previous = __atomic_load_n(&thread_object, __ATOMIC_RELAXED);
    __atomic_store_n(&thread_object, object, __ATOMIC_RELAXED);
    // A handler on this thread must see the new object before the caller releases the old one.
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    if (object && !thread_exit_armed && __atomic_load_n(&installed, __ATOMIC_ACQUIRE)) {
        thread_exit_armed = pthread_setspecific(thread_exit_key, (void *)1) == 0;
    }
    return previous;
}

// Swift code may not name the runtime's entry points (they are reserved), and TaskLocal.withValue
// costs retains and an async frame per scope, so withProfileLabels binds through these. Both are
// present whenever the TaskLocal type is (the same library).
void pp_labels_bind(void *object) {
    // The runtime moves the value (one object pointer, as the handler reads it) into its binding.
    void *value = object;
    swift_task_localValuePush(task_local_key, &value, task_local_value_type);
}

void pp_labels_unbind(void) { swift_task_localValuePop(); }

void *pp_labels_thread_get(void) { return __atomic_load_n(&thread_object, __ATOMIC_RELAXED); }

uint32_t pp_label_node_sampled(const pp_label_node *node) {
    return __atomic_load_n(&node->sampled, __ATOMIC_ACQUIRE);
}

pp_label_node *pp_labels_take_sampled(void) {
    return __atomic_exchange_n(&sampled_head, NULL, __ATOMIC_ACQUIRE);
}

// Label sets held by dumps (see pp_labels.h); a few slots so that concurrent dumps need no lock.
#define DUMP_HOLDS 8
static void *dump_holds[DUMP_HOLDS];

const void *pp_labels_task_local_key(void) {
    return __atomic_load_n(&installed, __ATOMIC_ACQUIRE) ? task_local_key : NULL;
}

int pp_labels_dump_hold(void *object) {
    for (int index = 0; index < DUMP_HOLDS; index++) {
        void *expected = NULL;
        // Sequentially consistent: the dump's next read of the binding must come after this store
        // in the order the deinit's fence and load see (store-load, Dekker-style).
        if (__atomic_compare_exchange_n(&dump_holds[index], &expected, object, 0, __ATOMIC_SEQ_CST,
                                        __ATOMIC_RELAXED))
            return 1;
    }
    return 0;
}

uint64_t pp_labels_dump_mark(void *object) { return tag_of(object); }

void pp_labels_dump_release(void *object) {
    for (int index = 0; index < DUMP_HOLDS; index++) {
        if (__atomic_load_n(&dump_holds[index], __ATOMIC_RELAXED) == object) {
            __atomic_store_n(&dump_holds[index], NULL, __ATOMIC_RELEASE);
            return;
        }
    }
}

void pp_labels_wait_for_dumps(const void *object) {
    // Orders the release that ended the set's last binding before the loads of the holds.
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    for (int index = 0; index < DUMP_HOLDS; index++) {
        while (__atomic_load_n(&dump_holds[index], __ATOMIC_ACQUIRE) == object) sched_yield();
    }
}
