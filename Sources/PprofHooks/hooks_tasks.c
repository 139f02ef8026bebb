// swift_task_create interposition (tasks in the goroutine profile, issue 14). swift_task_create runs
// inside the hook: it calls the runtime's function and records the new task in CPprof's lock-free
// registry; no locks of its own (only the first call's dlsym, which takes the loader's lock).
// enqueue_global and enqueue_main run inside the runtime's enqueue hooks, on any thread: a stamp
// and a table store (lock-free), then the job goes on as it would have.
//
// Compiler-emitted task creation (Task {}, Task.detached, task-group addTask) calls the exported
// swift_task_create through the PLT, so this definition in the executable wins. async let children
// are created inside the runtime; swift_asyncLet_begin, which client code calls, is hooked for them.
#include <dlfcn.h>
#include <stddef.h>
#include <stdint.h>

#include <CPprof.h>

#include "next_definition.h"

typedef struct task_and_context {
    void *task;
    void *context;
} task_and_context;

typedef __attribute__((swiftcall)) task_and_context (*swift_task_create_function)(
    size_t flags, void *options, const void *result_type, void *closure_entry, void *closure_context);

static void *real_swift_task_create;

// Set while the runtime creates a task on this thread: its first enqueue needs no stamp of its own
// (the creation stamp, taken before, is older), which saves a clock read and a lookup per task.
// Initial-exec: PprofPreload is a shared library, where other TLS models may allocate on first use.
static __thread int creating_task __attribute__((tls_model("initial-exec")));

static swift_task_create_function resolve_real_swift_task_create(void) {
    return (swift_task_create_function)pp_next_definition(&real_swift_task_create, "swift_task_create");
}


__attribute__((visibility("default"), swiftcall)) task_and_context swift_task_create(
    size_t flags, void *options, const void *result_type, void *closure_entry, void *closure_context) {
    // Stamped before: the task may run, suspend and be resumed before the call returns.
    uint32_t stamp = pp_tasks_enabled() ? pp_tasks_stamp() : 0;
    creating_task = 1;
    task_and_context created =
        resolve_real_swift_task_create()(flags, options, result_type, closure_entry, closure_context);
    creating_task = 0;
    if (created.task && pp_tasks_enabled()) pp_tasks_record((uintptr_t)created.task, stamp);
    return created;
}

// async let: compiler-emitted code calls swift_asyncLet_begin through the PLT, and the runtime
// creates the child inside (swift_task_create_common, no PLT). The child is read from the AsyncLet
// afterwards: the runtime builds an AsyncLetImpl there, a ChildTaskStatusRecord {flags, parent,
// first child} whose first child is the task. Recorded only once the layout has been checked.
typedef __attribute__((swiftcall)) void (*swift_asyncLet_begin_function)(void *alet, void *options,
                                                                          const void *result_type,
                                                                          void *closure_entry,
                                                                          void *closure_context, void *result);

static void *real_swift_asyncLet_begin;

static swift_asyncLet_begin_function resolve_real_swift_asyncLet_begin(void) {
    return (swift_asyncLet_begin_function)pp_next_definition(&real_swift_asyncLet_begin, "swift_asyncLet_begin");
}

__attribute__((visibility("default"), swiftcall)) void swift_asyncLet_begin(void *alet, void *options,
                                                                            const void *result_type,
                                                                            void *closure_entry,
                                                                            void *closure_context, void *result) {
    uint32_t stamp = pp_tasks_enabled() ? pp_tasks_stamp() : 0;
    resolve_real_swift_asyncLet_begin()(alet, options, result_type, closure_entry, closure_context, result);
    if (alet && pp_tasks_enabled()) pp_tasks_record_async_let((uintptr_t)alet, stamp);
}

// The runtime's enqueue hooks (writable function pointers in libswift_Concurrency): every job sent
// to the global or main executor passes here, so a task resumed there (a continuation, a sleep,
// a child's result, a hop off an actor) gets a stamp, and "suspended since at most" has a bound.
// A hook the program had set first keeps running after ours; one it sets later replaces ours, which
// only leaves stamps older (the bound looser, never wrong).
typedef __attribute__((swiftcall)) void (*enqueue_original)(void *job);
typedef __attribute__((swiftcall)) void (*enqueue_hook)(void *job, enqueue_original original);

static enqueue_hook previous_global_hook;
static enqueue_hook previous_main_hook;

static __attribute__((swiftcall)) void enqueue_global(void *job, enqueue_original original) {
    if (job && !creating_task && pp_tasks_enabled()) pp_tasks_note_enqueued((uintptr_t)job);
    if (previous_global_hook) previous_global_hook(job, original);
    else original(job);
}

static __attribute__((swiftcall)) void enqueue_main(void *job, enqueue_original original) {
    if (job && !creating_task && pp_tasks_enabled()) pp_tasks_note_enqueued((uintptr_t)job);
    if (previous_main_hook) previous_main_hook(job, original);
    else original(job);
}

static void install_enqueue_hook(const char *name, enqueue_hook ours, enqueue_hook *previous) {
    enqueue_hook *variable = (enqueue_hook *)dlsym(RTLD_DEFAULT, name);
    if (!variable) return;  // no concurrency runtime in the process
    *previous = __atomic_exchange_n(variable, ours, __ATOMIC_ACQ_REL);
}

__attribute__((constructor)) static void install_task_hooks(void) {
    resolve_real_swift_task_create();
    resolve_real_swift_asyncLet_begin();
    install_enqueue_hook("swift_task_enqueueGlobal_hook", enqueue_global, &previous_global_hook);
    install_enqueue_hook("swift_task_enqueueMainExecutor_hook", enqueue_main, &previous_main_hook);
}
