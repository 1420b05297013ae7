/* JSON output of the ampc commands (--json summaries, --metrics lines),
 * built with cJSON so that every string (paths included) is escaped and
 * every line parses. */
#ifndef AMPC_JSON_OUT_H
#define AMPC_JSON_OUT_H

#include <cjson/cJSON.h>
#include <stdio.h>

/* A float32 value as the shortest decimal that reads back (as float32) to
 * the same bits; null when it is not finite. Added to `obj` under `key`. */
void ampc_json_float(cJSON *obj, const char *key, float v);

/* A double as printf(fmt) prints it (for fields with a documented number
 * of digits); null when it is not finite. */
void ampc_json_fmt(cJSON *obj, const char *key, const char *fmt, double v);

/* A whole number (exact up to 2^53). */
void ampc_json_int(cJSON *obj, const char *key, long long v);

/* A string (NULL: null). */
void ampc_json_str(cJSON *obj, const char *key, const char *v);

/* Prints `obj` on one line followed by a newline and frees it; returns 0,
 * or -1 when printing failed (out of memory or a write error). */
int ampc_json_line(FILE *f, cJSON *obj);

#endif
