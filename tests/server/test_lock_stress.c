/*
 * test_lock_stress.c -- the lock recipe (docs/recipes.md) under load,
 * against the real etagkv-server (issue 19, DESIGN §9): CLIENTS client
 * processes each complete CYCLES critical sections on one lock, and KILLS
 * holders are SIGKILLed while they hold it.
 *
 * A client's cycle: renew (or grant) its lease; acquire = PUT /kv/lock
 * with If-None-Match: * and ETagKV-Lease (on 412, long-poll the lock key
 * until it changes); read the counter; increment it in a POST /txn that
 * first checks that the lock key is still at the revision it created
 * (the fencing token); release = DELETE /kv/lock with ETagKV-If-Revision;
 * log the section (lock revision, increment revision) to its slot's file.
 *
 * A kill is made to land while the victim holds the lock with a barrier,
 * not a sleep: the parent asks a slot to park, the client parks after its
 * acquire (before the increment) or after its increment committed (before
 * its log line), and the parent SIGKILLs it there and starts a new client
 * in the slot, which carries on from the slot's log.  The lock then frees
 * itself when the dead client's lease expires.
 *
 * What is checked, from the server's own change log and the clients' logs,
 * never from timing:
 * - the lock key's events alternate create (version 1) and delete: no two
 *   holders ever overlap;
 * - every increment lies inside one holding of the lock, at most one per
 *   holding;
 * - the counter equals the increments in the change log, which equal the
 *   sections logged (CLIENTS x CYCLES) plus the holders killed after their
 *   increment committed;
 * - every logged section is one of those holdings and increments.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "httputil.h"
#include "testutil.h"

#ifndef ETAGKV_SERVER_BIN
#error "ETAGKV_SERVER_BIN must name the etagkv-server binary"
#endif

#define CLIENTS 16
#define CYCLES 100
#define KILLS 6
/* Long enough that a live holder on a loaded machine (or a sanitizer
 * build) rarely loses its lease mid-section (which is still correct: its
 * fenced increment is refused and it tries again), short enough that the
 * KILLS expiries cost seconds. */
#define TTL_MS 2000
#define WAIT_S 10      /* Prefer: wait of a waiter's long-poll */
#define DEADLINE_S 540 /* the whole run; ctest's timeout is 600 s */

enum park { PARK_NONE, PARK_AFTER_ACQUIRE, PARK_AFTER_INCREMENT };

/* Shared between the parent and the clients (MAP_SHARED). */
struct slot {
    atomic_int park;   /* enum park: set by the parent */
    atomic_int parked; /* set by the client, holding the lock */
    pid_t pid;         /* parent only */
};

struct shared {
    struct slot slot[CLIENTS];
    atomic_int sections; /* logged, over all clients: the run's progress */
};

struct client {
    CURL *h;
    int port;
    int slot;
    struct shared *sh;
    char log[600];
    char lease[32];
};

/* ---- the client process -------------------------------------------------- */

static void die(const struct client *cl, const char *what, long code)
{
    fprintf(stderr, "client %d (pid %ld): %s: %ld\n", cl->slot, (long)getpid(),
            what, code);
    _exit(2);
}

/* One request; a transport error ends the client (exit 2). */
static long call(struct client *cl, struct hu_resp *r, const char *method,
                 const char *path, const char *const *headers, const char *body)
{
    struct hu_req q = {method, path, headers, body,
                       body != NULL ? strlen(body) : 0};

    hu_perform(cl->h, cl->port, &q, r, WAIT_S + 60);
    if (r->err != CURLE_OK)
        die(cl, curl_easy_strerror(r->err), r->err);
    return r->code;
}

static uint64_t header_u64(const struct hu_resp *r, const char *name)
{
    const char *v = hu_hdr(r, name);

    return v != NULL ? strtoull(v, NULL, 10) : 0;
}

/* Renew the client's lease, or grant a new one if it has none or it died. */
static void ensure_lease(struct client *cl)
{
    static const char *const json[] = {"Content-Type: application/json", NULL};
    struct hu_resp r;
    char path[64], body[48];
    json_t *j;
    long code;

    if (cl->lease[0] != '\0') {
        snprintf(path, sizeof path, "/leases/%s/keepalive", cl->lease);
        code = call(cl, &r, "POST", path, NULL, NULL);
        hu_resp_free(&r);
        if (code == 200)
            return;
        if (code != 404)
            die(cl, "keepalive", code);
    }
    snprintf(body, sizeof body, "{\"ttl_ms\": %d}", TTL_MS);
    code = call(cl, &r, "POST", "/leases", json, body);
    j = code == 201 ? json_loads(r.body, 0, NULL) : NULL;
    if (!json_is_string(json_object_get(j, "id")))
        die(cl, "grant", code);
    snprintf(cl->lease, sizeof cl->lease, "%s",
             json_string_value(json_object_get(j, "id")));
    json_decref(j);
    hu_resp_free(&r);
}

/* The lock is held by someone else: long-poll it until it changes or goes
 * (the recipe's waiter). */
static void wait_for_lock(struct client *cl)
{
    char inm[160], prefer[32];
    const char *hdrs[] = {inm, prefer, NULL};
    struct hu_resp r;
    long code = call(cl, &r, "GET", "/kv/lock", NULL, NULL);

    snprintf(prefer, sizeof prefer, "Prefer: wait=%d", WAIT_S);
    if (code == 200)
        snprintf(inm, sizeof inm, "If-None-Match: %s", hu_hdr(&r, "ETag"));
    hu_resp_free(&r);
    if (code == 404)
        return; /* released meanwhile */
    if (code != 200)
        die(cl, "GET lock", code);
    code = call(cl, &r, "GET", "/kv/lock", hdrs, NULL);
    hu_resp_free(&r);
    if (code != 200 && code != 304 && code != 404)
        die(cl, "long-poll lock", code);
}

/* Acquire the lock: its revision (the fencing token). */
static uint64_t acquire(struct client *cl)
{
    char lease_h[64], body[64];
    const char *hdrs[] = {"If-None-Match: *", lease_h, NULL};

    snprintf(body, sizeof body, "client %d pid %ld", cl->slot, (long)getpid());
    for (;;) {
        struct hu_resp r;
        uint64_t rev;
        long code;

        ensure_lease(cl);
        snprintf(lease_h, sizeof lease_h, "ETagKV-Lease: %s", cl->lease);
        code = call(cl, &r, "PUT", "/kv/lock", hdrs, body);
        rev = header_u64(&r, "ETagKV-Revision");
        hu_resp_free(&r);
        if (code == 201 && rev > 0)
            return rev;
        if (code == 409)
            cl->lease[0] = '\0'; /* the lease died between renew and PUT */
        else if (code == 412)
            wait_for_lock(cl);
        else
            die(cl, "acquire", code);
    }
}

/* Stop here, holding the lock, if the parent asked for it: it SIGKILLs
 * parked clients. */
static void maybe_park(struct client *cl, enum park where)
{
    struct slot *s = &cl->sh->slot[cl->slot];

    if (atomic_load(&s->park) != (int)where)
        return;
    atomic_store(&s->parked, 1);
    for (;;)
        pause();
}

/* counter := counter + 1, if the lock is still ours (at revision lock_rev).
 * The revision of the increment, or 0 if the lock was lost meanwhile. */
static uint64_t increment(struct client *cl, uint64_t lock_rev)
{
    static const char *const json[] = {"Content-Type: application/json", NULL};
    struct hu_resp r;
    long code = call(cl, &r, "GET", "/kv/counter", NULL, NULL);
    long long v = code == 200 ? strtoll(r.body, NULL, 10) : 0;
    char value[32], *body;
    json_t *j;
    uint64_t rev = 0;

    if (code != 200 && code != 404)
        die(cl, "GET counter", code);
    snprintf(value, sizeof value, "%lld", v + 1);
    j = json_pack("{s:[{s:s,s:s,s:I},{s:s,s:s,s:s,s:s}]}", "ops", "op", "check",
                  "key", "lock", "if_revision", (json_int_t)lock_rev, "op",
                  "put", "key", "counter", "value", value,
                  code == 200 ? "if_match" : "if_none_match",
                  code == 200 ? hu_hdr(&r, "ETag") : "*");
    hu_resp_free(&r);
    body = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (body == NULL)
        die(cl, "json", 0);
    code = call(cl, &r, "POST", "/txn", json, body);
    free(body);
    if (code == 200) {
        j = json_loads(r.body, 0, NULL);
        rev = (uint64_t)json_integer_value(json_object_get(j, "revision"));
        json_decref(j);
    }
    hu_resp_free(&r);
    if (code != 200 && code != 409)
        die(cl, "POST /txn", code);
    if (code == 200 && rev == 0)
        die(cl, "POST /txn without a revision", code);
    return rev;
}

/* Release the lock if it is still the one we took. */
static void release_lock(struct client *cl, uint64_t lock_rev)
{
    char cond[64];
    const char *hdrs[] = {cond, NULL};
    struct hu_resp r;
    long code;

    snprintf(cond, sizeof cond, "ETagKV-If-Revision: %" PRIu64, lock_rev);
    code = call(cl, &r, "DELETE", "/kv/lock", hdrs, NULL);
    hu_resp_free(&r);
    /* 404 or 412: the lease expired meanwhile and the lock went with it. */
    if (code != 204 && code != 404 && code != 412)
        die(cl, "release", code);
}

static int logged_sections(const char *path)
{
    FILE *f = fopen(path, "r");
    int n = 0, ch;

    if (f == NULL)
        return 0;
    while ((ch = fgetc(f)) != EOF)
        n += ch == '\n';
    fclose(f);
    return n;
}

static void log_section(struct client *cl, uint64_t lock_rev, uint64_t inc_rev)
{
    char line[64];
    int n = snprintf(line, sizeof line, "%" PRIu64 " %" PRIu64 "\n", lock_rev,
                     inc_rev);
    int fd = open(cl->log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);

    /* One write(2) of one line with O_APPEND: a kill never leaves half. */
    if (fd < 0 || write(fd, line, (size_t)n) != n || close(fd) != 0)
        die(cl, "log", errno);
    atomic_fetch_add(&cl->sh->sections, 1);
}

static void client_main(struct client *cl)
{
    int done = logged_sections(cl->log);
    struct hu_resp r;
    char path[64];

    cl->h = curl_easy_init();
    if (cl->h == NULL)
        die(cl, "curl_easy_init", 0);
    while (done < CYCLES) {
        uint64_t lock_rev = acquire(cl), inc_rev;

        maybe_park(cl, PARK_AFTER_ACQUIRE);
        inc_rev = increment(cl, lock_rev);
        if (inc_rev != 0)
            maybe_park(cl, PARK_AFTER_INCREMENT);
        release_lock(cl, lock_rev);
        if (inc_rev != 0) {
            log_section(cl, lock_rev, inc_rev);
            done++;
        }
    }
    snprintf(path, sizeof path, "/leases/%s", cl->lease);
    (void)call(cl, &r, "DELETE", path, NULL, NULL);
    hu_resp_free(&r);
    curl_easy_cleanup(cl->h);
    _exit(0);
}

/* ---- the parent ---------------------------------------------------------- */

static struct hu_fixture fx;

static pid_t spawn(struct shared *sh, int slot)
{
    pid_t parent = getpid(), pid;

    atomic_store(&sh->slot[slot].park, PARK_NONE);
    atomic_store(&sh->slot[slot].parked, 0);
    fflush(NULL);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct client cl = {.port = fx.srv.port, .slot = slot, .sh = sh};

        /* Die with the test, and so never outlive its server. */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
            _exit(3);
        snprintf(cl.log, sizeof cl.log, "%s/slot-%d.log", fx.dir, slot);
        client_main(&cl);
    }
    sh->slot[slot].pid = pid;
    return pid;
}

static void nap_ms(long ms)
{
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000};

    nanosleep(&t, NULL);
}

/* Wait for client `slot` to exit by itself; 1 if it exited 0. */
static int reaped_ok(pid_t pid)
{
    int wst;

    ck_assert_int_eq(waitpid(pid, &wst, 0), pid);
    return WIFEXITED(wst) && WEXITSTATUS(wst) == 0;
}

/* Ask slot to park at `where`, wait until it holds the lock there, SIGKILL
 * it and start a new client in its place.  0, or -1 if the client finished
 * its cycles before it could park (it exited 0 then). */
static int kill_holder(struct shared *sh, int slot, enum park where,
                       double deadline)
{
    struct slot *s = &sh->slot[slot];
    int wst;

    atomic_store(&s->park, where);
    while (!atomic_load(&s->parked)) {
        pid_t w = waitpid(s->pid, &wst, WNOHANG);

        if (w == s->pid) {
            ck_assert_msg(WIFEXITED(wst) && WEXITSTATUS(wst) == 0,
                          "client %d failed (status %#x)", slot, wst);
            s->pid = 0;
            return -1;
        }
        ck_assert_msg(tu_now_s() < deadline, "no kill before the deadline");
        nap_ms(2);
    }
    ck_assert_int_eq(kill(s->pid, SIGKILL), 0);
    ck_assert_int_eq(waitpid(s->pid, &wst, 0), s->pid);
    ck_assert(WIFSIGNALED(wst) && WTERMSIG(wst) == SIGKILL);
    spawn(sh, slot);
    return 0;
}

/* All events of one key, oldest first (pages of /changes?key=). */
static json_t *events_of(const char *key)
{
    json_t *all = json_array();
    uint64_t after = 0;

    for (;;) {
        struct hu_resp r;
        char path[128];
        json_t *j, *ev;
        size_t i, n;

        snprintf(path, sizeof path,
                 "/changes?key=%s&after=%" PRIu64 "&limit=1000", key, after);
        hu_fixture_call(&fx, &r, "GET", path, NULL, NULL, 0);
        ck_assert_int_eq(r.code, 200);
        j = json_loads(r.body, 0, NULL);
        ck_assert_ptr_nonnull(j);
        ev = json_object_get(j, "events");
        n = json_array_size(ev);
        for (i = 0; i < n; i++)
            json_array_append(all, json_array_get(ev, i));
        after = (uint64_t)json_integer_value(json_object_get(j, "next"));
        json_decref(j);
        hu_resp_free(&r);
        if (n == 0)
            return all;
    }
}

static uint64_t ev_u64(json_t *ev, const char *name)
{
    return (uint64_t)json_integer_value(json_object_get(ev, name));
}

static int ev_is(json_t *ev, const char *type)
{
    return strcmp(json_string_value(json_object_get(ev, "type")), type) == 0;
}

/* The holdings of the lock from its events: starts[i] .. ends[i]
 * (UINT64_MAX: still held), disjoint and in order.  Their count. */
static size_t holdings(json_t *lock, uint64_t *starts, uint64_t *ends,
                       size_t cap)
{
    size_t i, n = 0;

    for (i = 0; i < json_array_size(lock); i++) {
        json_t *ev = json_array_get(lock, i);

        if (i % 2 == 0) {
            /* DESIGN §9: a create-only PUT creates: version 1. */
            ck_assert_msg(ev_is(ev, "put") && ev_u64(ev, "version") == 1 &&
                              ev_u64(ev, "create_revision") ==
                                  ev_u64(ev, "revision"),
                          "lock event %zu at revision %" PRIu64
                          " is not a create after a delete: two holders",
                          i, ev_u64(ev, "revision"));
            ck_assert_uint_lt(n, cap);
            starts[n] = ev_u64(ev, "revision");
            ends[n++] = UINT64_MAX;
        } else {
            ck_assert_msg(ev_is(ev, "delete"),
                          "lock event %zu at revision %" PRIu64
                          " is not a delete after a create: two holders",
                          i, ev_u64(ev, "revision"));
            ends[n - 1] = ev_u64(ev, "revision");
        }
    }
    return n;
}

/* The holding that revision rev lies in, or -1. */
static long holding_of(const uint64_t *starts, const uint64_t *ends, size_t n,
                       uint64_t rev)
{
    size_t lo = 0, hi = n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (starts[mid] <= rev)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo > 0 && rev < ends[lo - 1] ? (long)lo - 1 : -1;
}

/* Every increment in exactly one holding, at most one per holding; the
 * logged sections among them.  Returns the number of increments. */
static size_t check_increments(json_t *counter, const uint64_t *starts,
                               const uint64_t *ends, size_t n, int *seen)
{
    size_t i;

    for (i = 0; i < json_array_size(counter); i++) {
        json_t *ev = json_array_get(counter, i);
        uint64_t rev = ev_u64(ev, "revision");
        long h = holding_of(starts, ends, n, rev);

        ck_assert_msg(ev_is(ev, "put"), "the counter was deleted");
        ck_assert_msg(h >= 0,
                      "increment at revision %" PRIu64
                      " outside every holding of the lock",
                      rev);
        ck_assert_msg(!seen[h], "two increments in the holding from %" PRIu64,
                      starts[h]);
        seen[h] = 1;
    }
    return json_array_size(counter);
}

/* Each line of each slot's log is a holding (its lock revision) whose
 * increment is the one logged; CYCLES lines per slot. */
static void check_logs(const uint64_t *starts, const uint64_t *ends, size_t n,
                       json_t *counter)
{
    for (int slot = 0; slot < CLIENTS; slot++) {
        char path[600];
        unsigned long long lock_rev, inc_rev;
        int lines = 0;
        FILE *f;

        snprintf(path, sizeof path, "%s/slot-%d.log", fx.dir, slot);
        f = fopen(path, "r");
        ck_assert_ptr_nonnull(f);
        while (fscanf(f, "%llu %llu", &lock_rev, &inc_rev) == 2) {
            long h = holding_of(starts, ends, n, inc_rev);
            int found = 0;

            ck_assert_msg(h >= 0 && starts[h] == lock_rev,
                          "slot %d logged lock %llu, increment %llu: not "
                          "one holding",
                          slot, lock_rev, inc_rev);
            for (size_t i = 0; i < json_array_size(counter); i++)
                found |=
                    ev_u64(json_array_get(counter, i), "revision") == inc_rev;
            ck_assert_msg(found, "logged increment %llu not in the change log",
                          inc_rev);
            lines++;
        }
        fclose(f);
        ck_assert_int_eq(lines, CYCLES);
    }
}

START_TEST(sixteen_clients_share_one_lock_through_holder_kills)
{
    static const char *const opts[] = {"--nosync", NULL};
    static uint64_t starts[CLIENTS * CYCLES * 4], ends[CLIENTS * CYCLES * 4];
    static int seen[CLIENTS * CYCLES * 4];
    uint64_t seed = (uint64_t)time(NULL) ^ (uint64_t)getpid();
    double deadline = tu_now_s() + DEADLINE_S;
    struct shared *sh;
    int kills_after_increment = 0, kills = 0;
    json_t *lock, *counter;
    struct hu_resp r;
    size_t n, increments;

    printf("lock stress: seed %" PRIu64 "\n", seed);
    hu_fixture_init(&fx);
    hu_fixture_start(&fx, ETAGKV_SERVER_BIN, opts);
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE,
              MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ck_assert_ptr_ne(sh, MAP_FAILED);
    memset(sh, 0, sizeof *sh);
    for (int i = 0; i < CLIENTS; i++)
        spawn(sh, i);

    /* Spread the kills over the run by its progress, each on a random
     * slot, parked at a random place. */
    while (kills < KILLS) {
        int slot = (int)(tu_rng_next(&seed) % CLIENTS);
        enum park where =
            tu_rng_next(&seed) % 2 ? PARK_AFTER_INCREMENT : PARK_AFTER_ACQUIRE;

        ck_assert_msg(tu_now_s() < deadline, "only %d kills", kills);

        while (atomic_load(&sh->sections) <
               (kills + 1) * CLIENTS * CYCLES / (KILLS + 2)) {
            ck_assert_msg(tu_now_s() < deadline, "no progress: %d sections",
                          atomic_load(&sh->sections));
            nap_ms(10);
        }
        if (sh->slot[slot].pid == 0 ||
            kill_holder(sh, slot, where, deadline) != 0)
            continue;
        kills++;
        kills_after_increment += where == PARK_AFTER_INCREMENT;
    }
    for (int i = 0; i < CLIENTS; i++)
        if (sh->slot[i].pid != 0)
            ck_assert_msg(reaped_ok(sh->slot[i].pid), "client %d failed", i);
    ck_assert_int_eq(atomic_load(&sh->sections), CLIENTS * CYCLES);

    lock = events_of("lock");
    counter = events_of("counter");
    n = holdings(lock, starts, ends, sizeof starts / sizeof starts[0]);
    /* Each client revoked its lease at the end: the lock is free. */
    ck_assert_uint_ne(ends[n - 1], UINT64_MAX);
    increments = check_increments(counter, starts, ends, n, seen);
    check_logs(starts, ends, n, counter);
    hu_fixture_call(&fx, &r, "GET", "/kv/counter", NULL, NULL, 0);
    ck_assert_int_eq(r.code, 200);
    ck_assert_int_eq(strtoll(r.body, NULL, 10), (long long)increments);
    ck_assert_int_eq((long long)increments,
                     CLIENTS * CYCLES + kills_after_increment);
    printf("lock stress: %zu holdings, %zu increments, %d kills (%d after "
           "the increment)\n",
           n, increments, kills, kills_after_increment);
    hu_resp_free(&r);
    json_decref(lock);
    json_decref(counter);
    munmap(sh, sizeof *sh);
    hu_fixture_stop(&fx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("lock_stress");
    TCase *tc = tcase_create("lock");
    int rc;

    curl_global_init(CURL_GLOBAL_ALL);
    tcase_set_timeout(tc, DEADLINE_S + 30);
    tcase_add_test(tc, sixteen_clients_share_one_lock_through_holder_kills);
    suite_add_tcase(s, tc);
    rc = tu_run(s);
    curl_global_cleanup();
    return rc;
}
