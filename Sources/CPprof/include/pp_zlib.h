// zlib wrappers for the Swift side (never used in a handler). The zlib init macros are not
// importable into Swift, so they are wrapped here.
#ifndef PP_ZLIB_H
#define PP_ZLIB_H
#include <zlib.h>

// windowBits 15 + 16: write a gzip header (no name, zero mtime, as Go's gzip writer does).
// memLevel 8 is zlib's default (9 gains nothing on profiles: pprof-bench format).
static inline int pp_deflate_init_gzip(z_stream *stream, int level, int mem_level) {
    return deflateInit2(stream, level, Z_DEFLATED, 15 + 16, mem_level, Z_DEFAULT_STRATEGY);
}

// windowBits 15 + 32: accept either a zlib or a gzip header.
static inline int pp_inflate_init_auto(z_stream *stream) {
    return inflateInit2(stream, 15 + 32);
}

#endif
