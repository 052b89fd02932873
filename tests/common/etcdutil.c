/*
 * etcdutil.c -- the cluster's leader, as its members report it (see
 * etcdutil.h).
 */
#include "etcdutil.h"

#include <check.h>
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct text {
    char buf[8192];
    size_t len;
};

static size_t collect(char *data, size_t size, size_t n, void *ctx)
{
    struct text *t = ctx;
    size_t add = size * n;

    ck_assert_uint_lt(t->len + add, sizeof(t->buf));
    memcpy(t->buf + t->len, data, add);
    t->len += add;
    t->buf[t->len] = '\0';
    return add;
}

json_t *tu_etcd_post(const char *endpoint, const char *path, json_t *body)
{
    CURL *h = curl_easy_init();
    struct text t = {.len = 0};
    char url[400];
    char *text = json_dumps(body, JSON_COMPACT);
    json_t *j;

    ck_assert_ptr_nonnull(h);
    ck_assert_ptr_nonnull(text);
    snprintf(url, sizeof(url), "http://%s%s", endpoint, path);
    (void)curl_easy_setopt(h, CURLOPT_URL, url);
    (void)curl_easy_setopt(h, CURLOPT_POSTFIELDS, text);
    (void)curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    (void)curl_easy_setopt(h, CURLOPT_WRITEDATA, &t);
    (void)curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
    ck_assert_int_eq(curl_easy_perform(h), CURLE_OK);
    curl_easy_cleanup(h);
    free(text);
    json_decref(body);
    j = json_loads(t.buf, 0, NULL);
    ck_assert_msg(j != NULL, "etcd answered %s", t.buf);
    return j;
}

/* etcd's maintenance status of the member at endpoint (HOST:PORT): its own
 * id and its leader's (the gateway writes uint64s as strings). */
static void member_status(const char *endpoint, char *id, char *leader,
                          size_t cap)
{
    json_t *j = tu_etcd_post(endpoint, "/v3/maintenance/status", json_object());

    snprintf(id, cap, "%s",
             json_string_value(
                 json_object_get(json_object_get(j, "header"), "member_id")));
    snprintf(leader, cap, "%s",
             json_string_value(json_object_get(j, "leader")));
    json_decref(j);
}

pid_t tu_etcd_leader_pid(void)
{
    const char *list = getenv("ETAGKV_TEST_STORE") + strlen("etcd://");
    const char *pids = getenv("ETAGKV_TEST_ETCD_PIDS");

    for (int i = 0; *list != '\0' && *list != '/'; i++) {
        char endpoint[64], id[32], leader[32];
        size_t n = strcspn(list, ",/");

        ck_assert_uint_lt(n, sizeof(endpoint));
        memcpy(endpoint, list, n);
        endpoint[n] = '\0';
        member_status(endpoint, id, leader, sizeof(id));
        if (strcmp(id, leader) == 0) {
            for (int k = 0; k < i; k++)
                pids = strchr(pids, ' ') + 1;
            return (pid_t)atol(pids);
        }
        list += n + (list[n] == ',');
    }
    ck_abort_msg("no member is the leader");
    return -1;
}
