// PprofHooks: linking this target into an executable interposes the malloc family, pthread locks,
// conditions, semaphores and pthread_create, so the heap, allocs, block, mutex and threadcreate
// profiles have data. It has no API of its own; see the Pprof module.
#ifndef PPROF_HOOKS_H
#define PPROF_HOOKS_H
#endif
