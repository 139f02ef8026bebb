// Lock-free tables shared by the hooks and handlers: a stack table that deduplicates stacks into
// small ids, and a bucket table of atomic counters keyed by a 64-bit key (e.g. stack id + size).
// Both live in mmap'd memory of fixed capacity, never allocate after creation and never block;
// when full they count the drop and return 0.
#ifndef PP_TABLES_H
#define PP_TABLES_H

#include <stdint.h>

typedef struct pp_stack_table pp_stack_table;

// Creates a table for up to `capacity` distinct stacks holding `frame_capacity` frames in all.
// Not for use in a handler (mmap). Returns NULL on failure.
pp_stack_table *pp_stack_table_create(uint32_t capacity, uint32_t frame_capacity);

// The id (nonzero) of the stack, adding it if new. Returns 0 when the table is full or the slot is
// being written by an interrupted writer (counted in pp_stack_table_dropped). Async-signal-safe.
uint32_t pp_stack_table_intern(pp_stack_table *table, const uintptr_t *pcs, int count);

// The frames of stack `id` (as interned); returns the count, 0 for an unknown id. Safe anywhere.
int pp_stack_table_get(const pp_stack_table *table, uint32_t id, const uintptr_t **pcs);

// Number of stacks interned so far; ids run from 1 to this count.
uint32_t pp_stack_table_count(const pp_stack_table *table);

uint64_t pp_stack_table_dropped(const pp_stack_table *table);

#define PP_BUCKET_COUNTERS 4

typedef struct pp_bucket_table pp_bucket_table;

// Creates a table of up to `capacity` buckets, each with PP_BUCKET_COUNTERS int64 counters.
pp_bucket_table *pp_bucket_table_create(uint32_t capacity);

// The counters of the bucket for `key` (nonzero), creating it if new; NULL when full (counted).
// Async-signal-safe and lock-free; update the counters with atomic adds.
int64_t *pp_bucket_table_counters(pp_bucket_table *table, uint64_t key);

// Visits every bucket: its key and a snapshot of its counters. Safe anywhere; concurrent updates may
// or may not be seen.
typedef void (*pp_bucket_visitor)(void *context, uint64_t key, const int64_t *counters);
void pp_bucket_table_visit(const pp_bucket_table *table, pp_bucket_visitor visitor, void *context);

uint64_t pp_bucket_table_dropped(const pp_bucket_table *table);

// Clears every bucket's counters (keys stay). Not atomic with respect to concurrent updates.
void pp_bucket_table_reset(pp_bucket_table *table);

#endif
