// Reads of memory that may be unmapped, for code running in signal handlers and hooks.
//
// Two techniques, chosen per walk (see safe_read.c for the measurements behind the choice):
// - recovery: a plain load at a known instruction; if it faults, our SIGSEGV/SIGBUS handler makes it
//   return "unreadable". Free when nothing faults, but only usable while that handler is installed
//   and the faults are not blocked on the thread (a blocked synchronous fault kills the process).
// - probe: ask the kernel whether the page is readable (one rt_sigprocmask call that fails with
//   EFAULT on unreadable memory), at most once per page per walk thanks to a small page cache.
#ifndef PP_SAFE_READ_H
#define PP_SAFE_READ_H

#include <stdint.h>

#include "arch.h"

typedef struct pp_safe_reader {
    int recover;
    unsigned next_page;
    uintptr_t pages[4];
} pp_safe_reader;

// 1 if the recovery handler is installed, allowed, and still SIGSEGV's handler (a vDSO clock read,
// plus one system call at most once per coarse clock tick; once another handler has replaced it,
// 0 for good). Async-signal-safe.
int pp_fault_recovery_active(void);

// 1 if SIGSEGV or SIGBUS is in the signal set at `mask` (a kernel sigset, 8 bytes).
static inline int pp_mask_blocks_faults(uint64_t mask) {
    // Signal n is bit n - 1; SIGBUS is 7 and SIGSEGV 11 on both supported architectures.
    return (mask & ((1ull << (7 - 1)) | (1ull << (11 - 1)))) != 0;
}

// A reader for one walk; `faults_unblocked` says the caller knows SIGSEGV/SIGBUS are deliverable.
static inline void pp_safe_reader_init(pp_safe_reader *reader, int faults_unblocked) {
    reader->recover = faults_unblocked && pp_fault_recovery_active();
    reader->next_page = 0;
    for (int i = 0; i < 4; i++) reader->pages[i] = 0;
}

// 1 if the page holding `address` can be read, asking the kernel. Async-signal-safe.
int pp_page_is_readable(uintptr_t address);

// Reads the aligned word at `address`; returns 0 (and reads nothing) if it is not readable.
static inline int pp_safe_read(pp_safe_reader *reader, uintptr_t address, uintptr_t *value) {
    if (address < 4096 || (address & (PP_WORD - 1)) != 0) return 0;
    if (reader->recover) {
        pp_recoverable_load_result result = pp_arch_recoverable_load(address);
        *value = result.value;
        return (int)result.ok;
    }
    uintptr_t page = address & ~(uintptr_t)4095;
    int known = 0;
    for (int i = 0; i < 4; i++) known |= reader->pages[i] == page;
    if (!known) {
        if (!pp_page_is_readable(page)) return 0;
        reader->pages[reader->next_page++ & 3] = page;
    }
    *value = *(volatile const uintptr_t *)address;
    return 1;
}

#endif
