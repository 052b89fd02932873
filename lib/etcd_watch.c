/*
 * etcd_watch.c -- commits by other handles and other processes wake this
 * store's watchers (etagkv_wait(), etagkv_notify_open(); the server's
 * long-polls and event streams).
 *
 * Every commit that changes a record writes the store revision, P/m/revision
 * (etcd_env.h).  One thread per open store keeps an etcd Watch on that key
 * through the gateway's streaming POST /v3/watch, and calls the store's
 * wake-up for everything that arrives; the watchers then read the store's
 * revision themselves (wait.c), so a spurious wake-up costs one read and a
 * missed one cannot happen while the stream is up.  When the stream breaks
 * (a member went away) the thread wakes the watchers once -- a commit may
 * have gone by unseen -- and opens it again on the next endpoint, after a
 * pause that grows while streams keep failing at once (watch_main()).
 *
 * The thread sleeps in curl_multi_poll(), which curl_multi_wakeup() ends at
 * once, so closing a store does not wait for a timeout.
 */
#include <curl/curl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "etcd_env.h"
#include "store.h"

#define RECONNECT_PAUSE_MS 200
#define RECONNECT_PAUSE_MAX_MS 3200
#define STREAM_LIVED_MS 5000

struct ekv_etcd_watch {
    struct ekv_etcd_env *env;
    void (*fn)(void *ctx);
    void *ctx;
    CURLM *multi;
    atomic_int stop;
    pthread_t thread;
    char *body; /* the create_request, JSON */
};

static size_t on_event(char *data, size_t size, size_t n, void *arg)
{
    struct ekv_etcd_watch *w = arg;

    (void)data;
    w->fn(w->ctx);
    return size * n;
}

/* Run one watch stream on endpoint e until it ends or the store closes.
 * The stream requires a leader (gRPC metadata "hasleader", which the
 * gateway takes from a Grpc-Metadata- header, as clientv3's
 * WithRequireLeader sets it): a member cut off from the others' quorum
 * sees no commits, and without this would keep the stream open and
 * silent; with it, the member ends the stream once it has lost its
 * leader, and the watch moves to the next endpoint. */
static void stream(struct ekv_etcd_watch *w, size_t e)
{
    char url[300];
    CURL *h = curl_easy_init();
    struct curl_slist *hdr =
        curl_slist_append(NULL, "Grpc-Metadata-hasleader: true");
    int running = 1;

    if (h == NULL || hdr == NULL) {
        curl_slist_free_all(hdr);
        curl_easy_cleanup(h);
        return;
    }
    (void)snprintf(url, sizeof(url), "%s/v3/watch",
                   ekv_etcd_endpoint(w->env->client, e));
    (void)curl_easy_setopt(h, CURLOPT_URL, url);
    (void)curl_easy_setopt(h, CURLOPT_POSTFIELDS, w->body);
    (void)curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    (void)curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_event);
    (void)curl_easy_setopt(h, CURLOPT_WRITEDATA, w);
    (void)curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    (void)curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 1000L);
    /* A silent stream is a live one; a dead peer is noticed by TCP. */
    (void)curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    if (curl_multi_add_handle(w->multi, h) != CURLM_OK) {
        curl_easy_cleanup(h);
        curl_slist_free_all(hdr);
        return;
    }
    while (running && !atomic_load(&w->stop)) {
        if (curl_multi_perform(w->multi, &running) != CURLM_OK)
            break;
        if (running)
            (void)curl_multi_poll(w->multi, NULL, 0, 1000, NULL);
    }
    (void)curl_multi_remove_handle(w->multi, h);
    curl_easy_cleanup(h);
    curl_slist_free_all(hdr);
}

static void *watch_main(void *arg)
{
    struct ekv_etcd_watch *w = arg;
    size_t n = ekv_etcd_endpoint_count(w->env->client);
    int pause = RECONNECT_PAUSE_MS;

    for (size_t e = 0; !atomic_load(&w->stop); e = (e + 1) % n) {
        uint64_t t0 = ekv_mono_ns();

        stream(w, e);
        if (atomic_load(&w->stop))
            break;
        w->fn(w->ctx); /* a commit may have gone by while it was down */
        /* Streams refused at once (no member reachable, none with a
         * leader) are retried less and less often, up to a few seconds;
         * one that lived resets the pause. */
        if (ekv_mono_ns() - t0 >= (uint64_t)STREAM_LIVED_MS * 1000000u)
            pause = RECONNECT_PAUSE_MS;
        (void)curl_multi_poll(w->multi, NULL, 0, pause, NULL);
        if (pause < RECONNECT_PAUSE_MAX_MS)
            pause *= 2;
    }
    return NULL;
}

/* The create_request for the revision counter's key. */
static char *watch_body(const struct ekv_etcd_env *env)
{
    static const char name[] = "/m/revision";
    size_t len = env->prefix_len + sizeof(name) - 1;
    char *key = malloc(len), *b64, *body = NULL;
    json_t *req, *create;

    if (key == NULL)
        return NULL;
    memcpy(key, env->prefix, env->prefix_len);
    memcpy(key + env->prefix_len, name, sizeof(name) - 1);
    b64 = ekv_base64_encode(key, len, NULL);
    free(key);
    if (b64 == NULL)
        return NULL;
    create = json_pack("{s:s}", "key", b64);
    req = create != NULL ? json_pack("{s:o}", "create_request", create) : NULL;
    if (req != NULL)
        body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    free(b64);
    return body;
}

etagkv_status ekv_etcd_watch_start(struct ekv_env *base, void (*fn)(void *),
                                   void *ctx)
{
    struct ekv_etcd_env *env = ekv_etcd_of(base);
    struct ekv_etcd_watch *w = calloc(1, sizeof(*w));

    if (w == NULL)
        return ETAGKV_NO_MEMORY;
    w->env = env;
    w->fn = fn;
    w->ctx = ctx;
    atomic_init(&w->stop, 0);
    w->body = watch_body(env);
    w->multi = curl_multi_init();
    if (w->body == NULL || w->multi == NULL ||
        pthread_create(&w->thread, NULL, watch_main, w) != 0) {
        if (w->multi != NULL)
            (void)curl_multi_cleanup(w->multi);
        free(w->body);
        free(w);
        return ekv_fail(ETAGKV_NO_MEMORY, "cannot start the etcd watch");
    }
    env->watch = w;
    return ETAGKV_OK;
}

void ekv_etcd_watch_stop(struct ekv_env *base)
{
    struct ekv_etcd_env *env = ekv_etcd_of(base);
    struct ekv_etcd_watch *w = env->watch;

    if (w == NULL)
        return;
    atomic_store(&w->stop, 1);
    (void)curl_multi_wakeup(w->multi);
    (void)pthread_join(w->thread, NULL);
    (void)curl_multi_cleanup(w->multi);
    free(w->body);
    free(w);
    env->watch = NULL;
}
