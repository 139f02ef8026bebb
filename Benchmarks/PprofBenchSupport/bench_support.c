// pp_bench_empty_handler and pp_bench_walk_handler run in signal handlers.
#include "PprofBenchSupport.h"

#include <CPprof.h>
#include <malloc.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

// The recursion is written in assembly: compilers keep frame pointers under SwiftPM whatever the
// flags. Each frame saves a callee-saved register (not the frame pointer) and keeps a local, with
// call frame information saying so, like code built with -fomit-frame-pointer.
#if defined(__x86_64__)
__asm__(".text\n"
        ".globl pp_bench_recurse_without_frame_pointers\n"
        ".type pp_bench_recurse_without_frame_pointers, @function\n"
        "pp_bench_recurse_without_frame_pointers:\n"
        ".cfi_startproc\n"
        "    push %rbx\n"
        ".cfi_def_cfa_offset 16\n"
        ".cfi_offset %rbx, -16\n"
        "    sub $16, %rsp\n"
        ".cfi_def_cfa_offset 32\n"
        "    mov %edi, %ebx\n"
        "    cmp $1, %edi\n"
        "    jg 1f\n"
        "    mov %rdx, %rdi\n"
        "    call *%rsi\n"
        "    mov %ebx, %eax\n"
        "    jmp 2f\n"
        "1:  dec %edi\n"
        "    call pp_bench_recurse_without_frame_pointers\n"
        "    add %ebx, %eax\n"
        "2:  add $16, %rsp\n"
        ".cfi_def_cfa_offset 16\n"
        "    pop %rbx\n"
        ".cfi_def_cfa_offset 8\n"
        "    ret\n"
        ".cfi_endproc\n"
        ".size pp_bench_recurse_without_frame_pointers, . - pp_bench_recurse_without_frame_pointers\n");
#else
__asm__(".text\n"
        ".globl pp_bench_recurse_without_frame_pointers\n"
        ".type pp_bench_recurse_without_frame_pointers, %function\n"
        "pp_bench_recurse_without_frame_pointers:\n"
        ".cfi_startproc\n"
        "    stp x19, x30, [sp, #-16]!\n"
        ".cfi_def_cfa_offset 16\n"
        ".cfi_offset x19, -16\n"
        ".cfi_offset x30, -8\n"
        "    mov w19, w0\n"
        "    cmp w0, #1\n"
        "    b.gt 1f\n"
        "    mov x0, x2\n"
        "    blr x1\n"
        "    mov w0, w19\n"
        "    b 2f\n"
        "1:  sub w0, w0, #1\n"
        "    bl pp_bench_recurse_without_frame_pointers\n"
        "    add w0, w0, w19\n"
        "2:  ldp x19, x30, [sp], #16\n"
        ".cfi_def_cfa_offset 0\n"
        "    ret\n"
        ".cfi_endproc\n"
        ".size pp_bench_recurse_without_frame_pointers, . - pp_bench_recurse_without_frame_pointers\n");
#endif

static int empty_signal = -1, walk_signal = -1;
static int max_frames = 32;
static pp_bench_walk_totals totals;

static void pp_bench_empty_handler(int signo, siginfo_t *info, void *context) {
    (void)signo;
    (void)info;
    (void)context;
}

// CPU time of the calling thread: unlike wall time, it does not count time spent preempted, so
// loops measured with it stay meaningful on a busy machine.
static int64_t thread_cpu_ns(void) {
    struct timespec now;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
    return (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
}

static void pp_bench_walk_handler(int signo, siginfo_t *info, void *context) {
    (void)signo;
    (void)info;
    uintptr_t pcs[256];
    unsigned flags = 0;
    int depth = pp_unwind_from_ucontext(context, pcs, max_frames, &flags);
    totals.walks += 1;
    totals.frames += depth;
    totals.last_flags = flags;
}

int pp_bench_install_handlers(void) {
    int candidates[64];
    int count = pp_signal_realtime_candidates(candidates, 64);
    empty_signal = pp_signal_claim(candidates, count, pp_bench_empty_handler);
    walk_signal = pp_signal_claim(candidates, count, pp_bench_walk_handler);
    return empty_signal >= 0 && walk_signal >= 0 ? 0 : -1;
}

int64_t pp_bench_signal_self(int walk, int count, int frames) {
    max_frames = frames > 256 ? 256 : frames;
    long pid = getpid();
    long tid = syscall(SYS_gettid);
    int64_t start = thread_cpu_ns();
    for (int i = 0; i < count; i++) syscall(SYS_tgkill, pid, tid, walk ? walk_signal : empty_signal);
    return thread_cpu_ns() - start;
}

pp_bench_walk_totals pp_bench_take_walk_totals(void) {
    pp_bench_walk_totals result = totals;
    totals = (pp_bench_walk_totals){0, 0, 0};
    return result;
}

int64_t pp_bench_walk_here(int iterations, int frames, int *depth, unsigned *flags) {
    ucontext_t context;
    getcontext(&context);
    uintptr_t pcs[256];
    if (frames > 256) frames = 256;
    int64_t start = thread_cpu_ns();
    for (int i = 0; i < iterations; i++) *depth = pp_unwind_from_ucontext(&context, pcs, frames, flags);
    return thread_cpu_ns() - start;
}

size_t pp_bench_heap_in_use(void) {
    malloc_trim(0);
    struct mallinfo2 info = mallinfo2();
    return info.uordblks + info.hblkhd;
}
