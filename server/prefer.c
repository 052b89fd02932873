/*
 * prefer.c -- the Prefer request header (RFC 7240): the preferences this
 * server honours, read from every Prefer field line of a request.
 *
 *   Prefer     = 1#preference
 *   preference = token [ BWS "=" BWS word ] *( OWS ";" [ OWS parameter ] )
 *   word       = token / quoted-string
 *
 * Two preferences mean something here: wait=N (a GET that would be 304, or
 * an empty page of /changes, is held; watch.c) and return=representation
 * (a PUT answers with a representation; kv.c).  Unknown preferences and
 * every parameter are ignored (§2), and of a preference given more than
 * once only the first counts (§2), across field lines too.
 */
#include "server.h"

#include <string.h>
#include <strings.h>

#define SEEN_WAIT 0x1u
#define SEEN_RETURN 0x2u

static int is_tchar(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch >= '0' && ch <= '9') ||
           (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/* Past a quoted-string that starts at p (at its '"'), or to its end. */
static const char *skip_quoted(const char *p)
{
    for (p++; *p != '\0' && *p != '"'; p++)
        if (*p == '\\' && p[1] != '\0')
            p++;
    return *p == '"' ? p + 1 : p;
}

/* Does the word [w, w + len) (a token, or a quoted-string with its quotes)
 * equal text, case-insensitively? */
static int word_is(const char *w, size_t len, const char *text)
{
    size_t n = strlen(text);

    if (len == n + 2 && w[0] == '"') {
        w++;
        len -= 2;
    }
    return len == n && strncasecmp(w, text, n) == 0;
}

/* delta-seconds, capped at cap; -1 if the word is not one. */
static long delta_seconds(const char *w, size_t len, unsigned cap)
{
    uint64_t n;

    if (len >= 2 && w[0] == '"') {
        w++;
        len -= 2;
    }
    return srv_decimal(w, len, cap, &n) < 0 ? -1 : (long)n;
}

/* One preference: name [= word]. */
static void apply(const char *name, size_t name_len, const char *w,
                  size_t w_len, unsigned wait_cap, struct srv_prefer *p,
                  unsigned *seen)
{
    if (name_len == 4 && strncasecmp(name, "wait", 4) == 0 &&
        !(*seen & SEEN_WAIT)) {
        long n = delta_seconds(w, w_len, wait_cap);

        *seen |= SEEN_WAIT;
        p->wait_s = n > 0 ? (unsigned)n : 0;
    } else if (name_len == 6 && strncasecmp(name, "return", 6) == 0 &&
               !(*seen & SEEN_RETURN)) {
        *seen |= SEEN_RETURN;
        p->return_representation = word_is(w, w_len, "representation");
    }
}

void srv_prefer_parse_value(const char *v, unsigned wait_cap,
                            struct srv_prefer *p, unsigned *seen)
{
    while (v != NULL && *v != '\0') {
        const char *name, *w = "";
        size_t name_len, w_len = 0;

        v += strspn(v, " \t,");
        name = v;
        while (is_tchar(*v))
            v++;
        name_len = (size_t)(v - name);
        v += strspn(v, " \t");
        if (*v == '=') {
            v += 1 + strspn(v + 1, " \t");
            w = v;
            if (*v == '"')
                v = skip_quoted(v);
            else
                while (is_tchar(*v))
                    v++;
            w_len = (size_t)(v - w);
        }
        if (name_len > 0)
            apply(name, name_len, w, w_len, wait_cap, p, seen);
        /* Parameters, or anything malformed, up to the next element. */
        while (*v != '\0' && *v != ',')
            v = *v == '"' ? skip_quoted(v) : v + 1;
    }
}

struct lines {
    unsigned wait_cap;
    struct srv_prefer *p;
    unsigned seen;
};

static enum MHD_Result each_line(void *cls, enum MHD_ValueKind kind,
                                 const char *key, const char *value)
{
    struct lines *l = cls;

    (void)kind;
    if (strcasecmp(key, "Prefer") == 0)
        srv_prefer_parse_value(value, l->wait_cap, l->p, &l->seen);
    return MHD_YES;
}

void srv_prefer_parse(struct MHD_Connection *c, unsigned wait_cap,
                      struct srv_prefer *p)
{
    struct lines l = {.wait_cap = wait_cap, .p = p};

    memset(p, 0, sizeof(*p));
    (void)MHD_get_connection_values(c, MHD_HEADER_KIND, each_line, &l);
}
