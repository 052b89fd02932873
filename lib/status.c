/*
 * status.c -- the status list's messages, names and HTTP codes, and the
 * per-thread diagnostic behind etagkv_last_error_detail().
 *
 * Every table is generated from ETAGKV_STATUS_LIST, so a status cannot be
 * added without its message, name and HTTP code.
 */
#include <stdarg.h>
#include <stdio.h>

#include "internal.h"

const char *etagkv_strerror(etagkv_status st)
{
    switch (st) {
#define X(name, num, http, msg)                                                \
    case ETAGKV_##name: return msg;
        ETAGKV_STATUS_LIST(X)
#undef X
    }
    return "unknown status";
}

const char *etagkv_status_name(etagkv_status st)
{
    switch (st) {
#define X(name, num, http, msg)                                                \
    case ETAGKV_##name: return #name;
        ETAGKV_STATUS_LIST(X)
#undef X
    }
    return "UNKNOWN";
}

int etagkv_status_http(etagkv_status st)
{
    switch (st) {
#define X(name, num, http, msg)                                                \
    case ETAGKV_##name: return http;
        ETAGKV_STATUS_LIST(X)
#undef X
    }
    return 500;
}

/* One buffer per thread: diagnostics never race between threads, and no
 * allocation is needed to report an out-of-memory condition. */
static _Thread_local char detail[256];

const char *etagkv_last_error_detail(void)
{
    return detail;
}

void ekv_clear_error(void)
{
    detail[0] = '\0';
}

etagkv_status ekv_fail(etagkv_status st, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    (void)vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    return st;
}
