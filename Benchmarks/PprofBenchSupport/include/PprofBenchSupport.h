// C helpers for pprof-bench: code built without frame pointers, and signal handlers that measure
// the stack walker where it runs in production (inside a handler).
#ifndef PPROF_BENCH_SUPPORT_H
#define PPROF_BENCH_SUPPORT_H

#include <stdint.h>
#include <stddef.h>

typedef void (*pp_bench_leaf)(void *context);

// Recurses `depth` frames in code built with -fomit-frame-pointer, then calls `leaf`.
int pp_bench_recurse_without_frame_pointers(int depth, pp_bench_leaf leaf, void *context);

// Installs the benchmark handlers on two free real-time signals. Returns 0 on success.
int pp_bench_install_handlers(void);

// Sends the empty handler's signal (walk == 0) or the walking handler's to the calling thread
// `count` times; the walking handler walks the interrupted stack (at most `max_frames`). Returns
// the thread CPU time (user and system) all of it took: time spent preempted is not counted, so
// the figure holds on a busy machine.
int64_t pp_bench_signal_self(int walk, int count, int max_frames);

// Walks, frames and the last walk's flags since the last reset.
typedef struct pp_bench_walk_totals {
    int64_t walks;
    int64_t frames;
    uint32_t last_flags;
} pp_bench_walk_totals;
pp_bench_walk_totals pp_bench_take_walk_totals(void);

// Walks the calling thread's stack from a context taken here, `iterations` times, without signals;
// returns the thread CPU time all walks took.
int64_t pp_bench_walk_here(int iterations, int frames, int *depth, unsigned *flags);

// Bytes malloc has handed out and not had back (mallinfo2: arena and mmapped chunks), after
// returning free memory to the system (malloc_trim), for the footprint benchmark.
size_t pp_bench_heap_in_use(void);

#endif
