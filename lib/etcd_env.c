/*
 * etcd_env.c -- the etcd backend (not yet built: opening one is
 * ETAGKV_UNSUPPORTED).
 */
#include "backend.h"

static etagkv_status etcd_open(const char *where, const etagkv_options *opts,
                               size_t page_bytes, struct ekv_env **out)
{
    (void)opts;
    (void)page_bytes;
    *out = NULL;
    return ekv_fail(ETAGKV_UNSUPPORTED, "%s: the etcd backend is not built",
                    where);
}

const struct ekv_backend_ops ekv_etcd_ops = {.name = "etcd", .open = etcd_open};
