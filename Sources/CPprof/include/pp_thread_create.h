// Thread-creation stacks for the threadcreate profile, recorded by PprofHooks' pthread_create.
#ifndef PP_THREAD_CREATE_H
#define PP_THREAD_CREATE_H

#include <stdint.h>

// Records one thread creation with the creating stack (leaf first) and its PP_STACK_* flags.
// Called inside the pthread_create hook: lock-free, no allocation after the first call (which maps
// the tables). Creations that do not fit are counted in pp_thread_create_dropped().
void pp_thread_create_record(const uintptr_t *pcs, int depth, unsigned flags);

// Visits every distinct creating stack with the number of threads it created and the union of
// its walks' PP_STACK_* flags. Safe anywhere but in a handler.
typedef void (*pp_thread_create_visitor)(void *context, const uintptr_t *pcs, int depth, int64_t count,
                                         unsigned flags);
void pp_thread_create_visit(pp_thread_create_visitor visitor, void *context);

// Threads created so far (recorded or dropped).
int64_t pp_thread_create_total(void);

// Creations whose stack could not be stored (tables full).
int64_t pp_thread_create_dropped(void);

#endif
