// Unwind tables for the stack walker, built in Swift (`UnwindTables.prepare()`) from each loaded
// image's .eh_frame and symbol table, and published here. The walker only reads them.
//
// Lifetime: everything reachable from a published `pp_unwind_tables` must stay valid for the rest
// of the process, because a walk in a signal handler may hold a pointer to an older snapshot.
#ifndef PP_UNWIND_TABLES_H
#define PP_UNWIND_TABLES_H

#include <stdint.h>

// How a row finds the canonical frame address (CFA: the caller's stack pointer).
enum {
    // No unwind information covers the address.
    PP_CFA_NONE = 0,
    // CFA = sp + cfa_offset.
    PP_CFA_SP = 1,
    // CFA = fp + cfa_offset.
    PP_CFA_FP = 2,
    // Unwind information exists but uses a rule the walker does not model (expressions, other
    // registers, huge offsets).
    PP_CFA_UNSUPPORTED = 3,
    // A signal trampoline: the interrupted context is a ucontext_t on the stack at sp.
    PP_CFA_SIGNAL_FRAME = 4,
    // The outermost frame (return address undefined: `_start`, `clone`): the stack ends here.
    PP_CFA_OUTERMOST = 5,
};

// Row flags.
enum {
    // The caller's fp is saved at CFA + fp_offset (else the function leaves fp unchanged).
    PP_ROW_FP_SAVED = 1u << 0,
    // The return address is still in the link register (aarch64 leaf code) rather than at
    // CFA + ra_offset.
    PP_ROW_RA_IN_LR = 1u << 1,
};

// An unwind rule (8 bytes). Rows map address ranges to rules; an image has few distinct rules.
typedef struct pp_unwind_rule {
    uint8_t cfa_rule;
    uint8_t flags;
    // Offsets in 8-byte words.
    int16_t cfa_offset;
    int16_t fp_offset;
    int16_t ra_offset;
} pp_unwind_rule;

// Rule 0 of every image is {PP_CFA_NONE}, rule 1 {PP_CFA_UNSUPPORTED}.
#define PP_UNWIND_RULE_NONE 0
#define PP_UNWIND_RULE_UNSUPPORTED 1

// log2 of the granule (512 bytes of code) of the per-image lookup indexes and bitmaps: small
// enough that a row lookup searches only a few rows.
#define PP_UNWIND_GRANULE_SHIFT 9

// One loaded image's executable range and its tables.
typedef struct pp_unwind_image {
    uintptr_t start;
    uintptr_t end;
    // Rows sorted by address (none: frame pointers only): row i says that from offset
    // row_addresses[i] (from `start`) up to the next row's, rules[row_rules[i]] applies.
    uint32_t row_count;
    const uint32_t *row_addresses;
    const uint16_t *row_rules;
    const pp_unwind_rule *rules;
    // For each granule g of [start, end): the index of the last row starting at or before the
    // granule's first address, so a lookup searches only row_index[g] ... row_index[g + 1].
    // ((end - start) >> PP_UNWIND_GRANULE_SHIFT) + 2 entries, or NULL when there are no rows.
    const uint32_t *row_index;
    // Bitmap of the granules holding code that does not keep a frame record (functions built
    // without frame pointers, signal trampolines): a return address there is unwound with the
    // rows; anywhere else with the cheap frame-record step. The interrupted leaf always uses rows.
    const uint8_t *row_granules;
    // Swift async funclets (`TY<n>_`/`TQ<n>_` symbols): sorted, disjoint [begin, end) pairs of
    // offsets from `start`, and a bitmap of the granules that hold any (NULL when there are none).
    uint32_t funclet_count;
    const uint32_t *funclets;
    const uint8_t *funclet_granules;
} pp_unwind_image;

typedef struct pp_unwind_tables {
    uint32_t image_count;
    // Sorted by start, disjoint.
    const pp_unwind_image *images;
} pp_unwind_tables;

// Makes `tables` the set every later walk uses (a release store). Not for use in a handler.
void pp_unwind_tables_publish(const pp_unwind_tables *tables);

// The published tables, or NULL before the first publication. Async-signal-safe.
const pp_unwind_tables *pp_unwind_tables_current(void);

// Installs the SIGSEGV/SIGBUS handler that lets the walker recover from faulting reads instead of
// probing each page with a system call. It chains every fault that is not the walker's to the
// handler that was installed before (the Swift runtime's backtracer, or the default action).
// Idempotent; re-checks that the handler is still the installed one and falls back to probing if
// someone replaced it (every walk checks SIGSEGV's handler too). Returns 1 when recovery is in use.
// Not for use in a handler.
int pp_fault_recovery_enable(void);

// How many faulting reads the recovery handler has turned into "unreadable" so far.
uint64_t pp_fault_recovery_count(void);

// Selects how walks make reads safe, for benchmarks: 0 = page probes only, 1 = recovery when the
// handler is installed and the faults are not blocked (the default).
void pp_fault_recovery_set_allowed(int allowed);

#endif
