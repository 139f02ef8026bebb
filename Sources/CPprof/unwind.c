// Stack walking. Every function in this file may run inside a signal handler or a malloc/lock
// hook, and is async-signal-safe: no allocation, no locks, fault-safe reads only.
#include "pp_unwind.h"

#include "arch.h"

#include <signal.h>
#include <sys/syscall.h>

// A page is readable iff the kernel can copy a sigset from it: rt_sigprocmask with an invalid
// `how` copies the new set before validating `how`, so EFAULT means unreadable and EINVAL readable.
static int page_is_readable(uintptr_t address) {
    long result = pp_syscall4(SYS_rt_sigprocmask, ~0L, address & ~(uintptr_t)7, 0, 8);
    return result != -14 /* -EFAULT */;
}

int pp_safe_read_word(uintptr_t address, uintptr_t *value) {
    if (address < 4096 || (address & (sizeof(uintptr_t) - 1)) != 0) return 0;
    if (!page_is_readable(address)) return 0;
    *value = *(volatile const uintptr_t *)address;
    return 1;
}

// Frame-pointer walk. Each frame record is {saved fp, return address}; the next record must lie
// above the current one and within 1 MiB, or the chain is garbage.
int pp_unwind(const pp_regs *regs, unsigned flags, uintptr_t *pcs, int max, unsigned *result_flags) {
    unsigned result = 0;
    int count = 0;
    if (max <= 0) return 0;
    uintptr_t fp = regs->fp;
    if (flags & PP_UNWIND_FROM_SIGNAL) {
        pcs[count++] = pp_strip_pac(regs->pc) + 1;
    } else if (regs->pc) {
        pcs[count++] = pp_strip_pac(regs->pc);
    }
    // No page is known readable yet (0 is a page too: a register holding a small integer is no frame).
    uintptr_t checked_page = ~(uintptr_t)0;
    while (count < max) {
        if (fp == 0 || (fp & (PP_FRAME_ALIGNMENT - 1)) != 0) {
            if (fp != 0) result |= PP_STACK_INCOMPLETE;
            break;
        }
        // A frame pointer below the stack pointer is a general-purpose register in code built
        // without frame pointers, not a frame record.
        if (fp < 4096 || (regs->sp != 0 && fp < regs->sp)) {
            result |= PP_STACK_INCOMPLETE;
            break;
        }
        uintptr_t page = fp & ~(uintptr_t)4095;
        if (page != checked_page) {
            // The record's second word is on the same page unless the first ends one.
            uintptr_t last = fp + sizeof(uintptr_t);
            if (!page_is_readable(fp) ||
                ((last & ~(uintptr_t)4095) != page && !page_is_readable(last))) {
                result |= PP_STACK_INCOMPLETE;
                break;
            }
            checked_page = page;
        }
        uintptr_t next_fp = ((volatile const uintptr_t *)fp)[0];
        uintptr_t ret = pp_strip_pac(((volatile const uintptr_t *)fp)[1]);
        if (ret == 0) break;
        pcs[count++] = ret;
        if (next_fp == 0) break;
        if (next_fp <= fp || next_fp - fp > (1u << 20)) {
            result |= PP_STACK_INCOMPLETE;
            break;
        }
        fp = next_fp;
    }
    if (count == max) result |= PP_STACK_TRUNCATED;
    if (result_flags) *result_flags = result;
    return count;
}

__attribute__((noinline)) int pp_capture_stack(int skip, uintptr_t *pcs, int max, unsigned *result_flags) {
    // Our own frame record holds the return address into our caller.
    pp_regs regs;
    uintptr_t frame = (uintptr_t)__builtin_frame_address(0);
    regs.pc = 0;
    regs.sp = frame;
    regs.fp = frame;
    regs.lr = 0;
    uintptr_t scratch[256];
    int wanted = max + skip;
    if (wanted > 256) wanted = 256;
    int n = pp_unwind(&regs, 0, scratch, wanted, result_flags);
    int out = 0;
    for (int i = skip; i < n && out < max; i++) pcs[out++] = scratch[i];
    return out;
}
