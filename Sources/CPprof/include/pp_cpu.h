// The CPU profiler's C side: the profiling-signal handler, the lock-free sample rings it writes,
// and arming of each thread's sampling source (perf_event fd or CPU-time timer). The Swift side
// (CPUProfile) chooses the engine, runs the reader thread and builds the profile.
#ifndef PP_CPU_H
#define PP_CPU_H

#include <stdint.h>

// How samples are triggered. One engine per profile; with PP_CPU_ENGINE_PERF a thread whose
// perf_event cannot be opened falls back to a timer of its own.
enum {
    PP_CPU_ENGINE_NONE = 0,
    // perf_event_open PERF_COUNT_SW_CPU_CLOCK per thread, user space only; signal routed to the thread.
    PP_CPU_ENGINE_PERF = 1,
    // timer_create on each thread's CPU-time clock, SIGEV_THREAD_ID; samples weighted 1 + si_overrun.
    PP_CPU_ENGINE_TIMER = 2,
    // setitimer(ITIMER_PROF): one process-wide timer, SIGPROF only.
    PP_CPU_ENGINE_ITIMER = 3,
    // No timers: samples are signals the process sends itself with tgkill (benchmarks and tests).
    PP_CPU_ENGINE_MANUAL = 4,
};

// The deepest stack a sample records; deeper stacks are marked PP_STACK_TRUNCATED.
#define PP_CPU_MAX_FRAMES 128
// Number of rings; a handler tries up to three of them before it drops the sample.
#define PP_CPU_STRIPES 16

typedef struct pp_cpu_config {
    int engine;
    int signo;
    int64_t period_ns;
    // Record the thread id and name with each sample.
    int thread_info;
    // Words per ring (rounded up to a power of two, at least 4096).
    uint32_t ring_words;
    // Most perf_event fds the profiler may hold open; threads beyond it get a timer.
    uint32_t perf_fd_limit;
} pp_cpu_config;

// Whether `engine` works for the calling thread: 0, or a negative errno. Not for use in a handler.
int pp_cpu_probe_engine(int engine);

// Installs the handler on a free signal suited to `engine` (SIGPROF first; then, for the
// per-thread engines, SIGURG and the real-time signals). Returns the signal or -1 if every candidate belongs to someone else.
int pp_cpu_claim_signal(int engine);

// Starts sampling with `config`: sets up the rings and arms the signal handler (but no thread
// sources: see pp_cpu_arm_thread / pp_cpu_arm_process_timer). Also installs the thread-start
// listener so that threads created from now on arm themselves. Returns 0 or a negative errno.
int pp_cpu_begin(const pp_cpu_config *config);

// Stops accepting samples and thread starts, then waits (at most `wait_ms`) until no handler or
// listener is running, and clears the thread claims. Returns 1 if they all finished, 0 on timeout
// (the rings are then retired: still drainable, never written by a later run). Call after the
// threads' sources are quiet, before releasing them.
int pp_cpu_end(int wait_ms);

// A thread's sampling source.
enum {
    PP_CPU_SOURCE_NONE = 0,
    PP_CPU_SOURCE_PERF = 1,   // id: perf_event fd
    PP_CPU_SOURCE_TIMER = 2,  // id: kernel timer id
};

typedef struct pp_cpu_source {
    int32_t kind;
    int32_t id;
} pp_cpu_source;

// Arms thread `tid` of this process for the running engine. Returns 0 or a negative errno
// (-ESRCH: the thread has exited). Safe on any thread, also inside the pthread_create hook.
int pp_cpu_arm_thread(int tid, pp_cpu_source *source);

// Stops the source firing (perf: disable; timer: delete). The source may still be in use by a
// handler in flight until pp_cpu_end returns or the thread has exited.
void pp_cpu_quiet_source(pp_cpu_source *source);

// Frees what remains of a quiet source (perf: closes the fd). Only once no handler can use it:
// after pp_cpu_end, or when its thread has exited.
void pp_cpu_release_source(pp_cpu_source *source);

// The process-wide timer of PP_CPU_ENGINE_ITIMER. Returns 0 or a negative errno.
int pp_cpu_arm_process_timer(void);
void pp_cpu_quiet_process_timer(void);

// Start time of thread `tid` of this process (field 22 of /proc/self/task/<tid>/stat, clock ticks
// since boot), or 0 if it has exited. Uses only raw system calls; safe inside hooks.
uint64_t pp_thread_start_time(int tid);

// Whether thread `tid` of this process blocks signal `signo`: 1, 0, or -1 if unknown (exited).
// A thread that blocks the profiling signal is armed but never sampled.
int pp_thread_blocks_signal(int tid, int signo);

// Claims the arming of the incarnation of `tid` that started at `start_time`, so that the reader's
// rescan and the thread-start listener never both arm one thread. Returns 1 if the caller now owns
// it, 0 if it was already claimed, -1 if `tid` is outside the claim table (then nobody races:
// the listener skips such threads).
int pp_cpu_claim_thread(int tid, uint64_t start_time);

// Gives up a claim (thread gone, or arming undone) unless another incarnation took it since.
void pp_cpu_unclaim_thread(int tid, uint64_t start_time);

// A thread armed by the thread-start listener, for the reader to take over.
typedef struct pp_cpu_started_thread {
    int32_t tid;
    int32_t error;  // 0, or the negative errno of a failed arming (then `source` is NONE)
    uint64_t start_time;
    pp_cpu_source source;
} pp_cpu_started_thread;

// Pops the next thread armed by the listener. Returns 1, or 0 when there is none. Reader only.
int pp_cpu_take_started_thread(pp_cpu_started_thread *out);

// A recorded sample in a ring: this header, then (if has_thread) pp_cpu_record_thread, then
// `words - header words` stack entries, leaf first.
typedef struct pp_cpu_record {
    uint16_t words;         // length of the record in 64-bit words, header included
    uint8_t unwind_flags;   // PP_STACK_* result flags of pp_unwind
    uint8_t has_thread;
    uint32_t reserved;
    uint64_t weight;        // sampling periods this sample stands for (1 + timer overruns; may be 0)
    uint64_t tag;           // label tag from pp_labels_current()
} pp_cpu_record;

typedef struct pp_cpu_record_thread {
    int64_t tid;
    char name[16];          // NUL-terminated (prctl PR_GET_NAME)
} pp_cpu_record_thread;

// Called once per record, in order per ring. `stack` points at `count` entries.
typedef void (*pp_cpu_record_visitor)(void *context, const pp_cpu_record *record,
                                      const pp_cpu_record_thread *thread, const uintptr_t *stack, int count);

// Drains every ring, calling `visitor` for each record. Reader only; never blocks the handlers.
void pp_cpu_drain(pp_cpu_record_visitor visitor, void *context);

typedef struct pp_cpu_counters {
    uint64_t lost_samples;      // samples dropped: rings full or all tried rings busy
    uint64_t lost_weight;       // sampling periods those samples stood for
    uint64_t foreign_signals;   // signals on the profiling signal that none of our sources sent
    uint64_t perf_fallbacks;    // threads that got a timer because perf_event_open failed
} pp_cpu_counters;

// Counters of the current (or last) run.
void pp_cpu_read_counters(pp_cpu_counters *out);

// Names the calling thread (at most 15 bytes are kept), for the reader thread.
void pp_cpu_name_current_thread(const char *name);

// Benchmarks: how much of its work the handler skips, so that signal delivery can be timed with
// and without it. PP_CPU_BYPASS_NONE in production.
enum {
    PP_CPU_BYPASS_NONE = 0,
    PP_CPU_BYPASS_ALL = 1,     // return right after accepting the signal
    PP_CPU_BYPASS_UNWIND = 2,  // record the sample with an empty stack
};
void pp_cpu_set_handler_bypass(int bypass);

// Benchmarks: records `iterations` samples of the calling thread's stack exactly as the handler
// records one (registers from a ucontext, stack walk if `walk`, ring write) and returns the
// nanoseconds per sample. Needs a running PP_CPU_ENGINE_MANUAL sampler; drain between calls.
double pp_cpu_bench_record_here(int iterations, int walk);

#endif
