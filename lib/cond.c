/*
 * cond.c -- the four precondition headers: parse (RFC 9110 §13.1) and
 * evaluate in the order of RFC 9110 §13.2.2.
 *
 * Pure: no LMDB here.  The store calls etagkv_cond_evaluate() inside the
 * write transaction with the record it just read, so the check and the
 * write are atomic.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

/* State of a date header: absent, a valid date, or present but ignored
 * (unparseable, or repeated: RFC 9110 §13.1.3/§13.1.4 say an invalid date
 * makes the recipient ignore the header). */
enum date_state { DATE_ABSENT = 0, DATE_VALID, DATE_IGNORED };

struct etagkv_cond {
    ekv_taglist if_match;
    ekv_taglist if_none_match;
    enum date_state modified_since_state, unmodified_since_state;
    int64_t modified_since_s,
        unmodified_since_s; /* seconds since the epoch when DATE_VALID */
    /* ETagKV-If-Revision (DESIGN §2): the key's mod_revision must be
     * if_revision, or the key absent when it is 0. */
    int if_revision_present;
    uint64_t if_revision;
};

etagkv_status etagkv_cond_new(etagkv_cond **out)
{
    ekv_clear_error();
    if (out == NULL)
        return ETAGKV_INVALID_ARGUMENT;
    *out = calloc(1, sizeof(**out));
    return *out != NULL ? ETAGKV_OK : ETAGKV_NO_MEMORY;
}

void etagkv_cond_free(etagkv_cond *c)
{
    if (c == NULL)
        return;
    ekv_taglist_clear(&c->if_match);
    ekv_taglist_clear(&c->if_none_match);
    free(c);
}

/* A second line of a date header makes the field invalid (it is not a
 * list), so the header is ignored like any other invalid date. */
static void add_date(enum date_state *state, int64_t *t, const char *value,
                     size_t len)
{
    int64_t parsed;

    if (*state != DATE_ABSENT) {
        *state = DATE_IGNORED;
        return;
    }
    if (etagkv_httpdate_parse(value, len, &parsed) == ETAGKV_OK) {
        *state = DATE_VALID;
        *t = parsed;
    } else {
        *state = DATE_IGNORED;
    }
}

/* ETagKV-If-Revision: 1*DIGIT with optional surrounding whitespace
 * (RFC 9110 §5.5 strips it from a field value), at most UINT64_MAX.  No
 * sign, no other byte: a malformed revision is a client error, never an
 * ignored header, because ignoring it would make a conditional write
 * unconditional.  Returns 0 and *out, or -1. */
static int parse_revision(const char *v, size_t len, uint64_t *out)
{
    size_t i = 0, end = len;
    uint64_t n = 0;

    while (i < end && (v[i] == ' ' || v[i] == '\t'))
        i++;
    while (end > i && (v[end - 1] == ' ' || v[end - 1] == '\t'))
        end--;
    if (i == end)
        return -1;
    for (; i < end; i++) {
        unsigned d = (unsigned char)v[i] - '0';

        if (d > 9 || n > (UINT64_MAX - d) / 10)
            return -1;
        n = n * 10 + d;
    }
    *out = n;
    return 0;
}

/* A further line of ETagKV-If-Revision must say the same revision: two
 * different ones cannot both hold, and picking one would be a guess. */
static etagkv_status add_revision(etagkv_cond *c, const char *value, size_t len)
{
    uint64_t rev;

    if (parse_revision(value, len, &rev) != 0)
        return ekv_fail(ETAGKV_INVALID_HEADER,
                        "ETagKV-If-Revision is not a revision number");
    if (c->if_revision_present && c->if_revision != rev)
        return ekv_fail(ETAGKV_INVALID_HEADER,
                        "ETagKV-If-Revision lines name different revisions");
    c->if_revision_present = 1;
    c->if_revision = rev;
    return ETAGKV_OK;
}

etagkv_status etagkv_cond_set_if_revision(etagkv_cond *c, uint64_t revision)
{
    ekv_clear_error();
    if (c == NULL)
        return ETAGKV_INVALID_ARGUMENT;
    c->if_revision_present = 1;
    c->if_revision = revision;
    return ETAGKV_OK;
}

etagkv_status etagkv_cond_add(etagkv_cond *c, etagkv_header h,
                              const char *value, size_t len)
{
    ekv_clear_error();
    if (c == NULL || (value == NULL && len > 0))
        return ETAGKV_INVALID_ARGUMENT;
    switch (h) {
    case ETAGKV_IF_MATCH: return ekv_taglist_append(&c->if_match, value, len);
    case ETAGKV_IF_NONE_MATCH:
        return ekv_taglist_append(&c->if_none_match, value, len);
    case ETAGKV_IF_MODIFIED_SINCE:
        add_date(&c->modified_since_state, &c->modified_since_s, value, len);
        return ETAGKV_OK;
    case ETAGKV_IF_UNMODIFIED_SINCE:
        add_date(&c->unmodified_since_state, &c->unmodified_since_s, value,
                 len);
        return ETAGKV_OK;
    case ETAGKV_IF_REVISION: return add_revision(c, value, len);
    }
    return ETAGKV_INVALID_ARGUMENT;
}

etagkv_status etagkv_cond_parse(const char *if_match, const char *if_none_match,
                                const char *if_modified_since,
                                const char *if_unmodified_since,
                                etagkv_cond **out)
{
    const char *values[4] = {if_match, if_none_match, if_modified_since,
                             if_unmodified_since};
    etagkv_cond *c;
    etagkv_status st;

    ekv_clear_error();
    if (out == NULL)
        return ETAGKV_INVALID_ARGUMENT;
    *out = NULL;
    st = etagkv_cond_new(&c);
    if (st != ETAGKV_OK)
        return st;
    for (int h = 0; h < 4; h++) {
        if (values[h] == NULL)
            continue;
        st = etagkv_cond_add(c, (etagkv_header)h, values[h], strlen(values[h]));
        if (st != ETAGKV_OK) {
            etagkv_cond_free(c);
            return st;
        }
    }
    *out = c;
    return ETAGKV_OK;
}

/* ---- constructors ----------------------------------------------------------
 */

/* A new condition set holding one header value: the constructors below are
 * etagkv_cond_new() and etagkv_cond_add(), so there is one evaluator. */
static etagkv_status cond_one(etagkv_header h, const char *value,
                              etagkv_cond **out)
{
    etagkv_status st = etagkv_cond_new(out);

    if (st != ETAGKV_OK)
        return st;
    st = etagkv_cond_add(*out, h, value, strlen(value));
    if (st != ETAGKV_OK) {
        etagkv_cond_free(*out);
        *out = NULL;
    }
    return st;
}

etagkv_status etagkv_cond_if_match(const char *etag, etagkv_cond **out)
{
    ekv_clear_error();
    if (out == NULL)
        return ETAGKV_INVALID_ARGUMENT;
    *out = NULL;
    if (etag == NULL)
        return ETAGKV_INVALID_ARGUMENT;
    /* Only our own strong form: an If-Match that could never match (a weak
     * tag, a foreign tag) would silently refuse every write, and "*" means
     * something else (etagkv_cond_update_only). */
    if (ekv_etag_parse_own(etag, strlen(etag), NULL) != 0)
        return ekv_fail(ETAGKV_INVALID_HEADER,
                        strcmp(etag, "*") == 0 ? "\"*\" is not an ETag: use "
                                                 "etagkv_cond_update_only"
                                               : "not an etagkv ETag");
    return cond_one(ETAGKV_IF_MATCH, etag, out);
}

etagkv_status etagkv_cond_create_only(etagkv_cond **out)
{
    ekv_clear_error();
    if (out == NULL)
        return ETAGKV_INVALID_ARGUMENT;
    return cond_one(ETAGKV_IF_NONE_MATCH, "*", out);
}

etagkv_status etagkv_cond_update_only(etagkv_cond **out)
{
    ekv_clear_error();
    if (out == NULL)
        return ETAGKV_INVALID_ARGUMENT;
    return cond_one(ETAGKV_IF_MATCH, "*", out);
}

int etagkv_cond_is_conditional(const etagkv_cond *c)
{
    if (c == NULL)
        return 0;
    /* An If-Unmodified-Since later than now holds for every record: a
     * record's Last-Modified is never later than the clock that stamped
     * it, so alone such a date conditions nothing. */
    return c->if_match.present || c->if_none_match.present ||
           c->if_revision_present ||
           (c->unmodified_since_state == DATE_VALID &&
            c->unmodified_since_s <= (int64_t)time(NULL));
}

/* RFC 9110 §13.1.1: "*" is true iff a current representation exists; a
 * list is true iff one member matches by strong comparison. */
static int if_match_true(const ekv_taglist *l, const etagkv_meta *cur)
{
    if (cur == NULL)
        return 0;
    if (l->any)
        return 1;
    return ekv_taglist_match_strong(l, cur->etag);
}

/* RFC 9110 §13.1.2: "*" is false iff a current representation exists; a
 * list is false iff one member matches by weak comparison. */
static int if_none_match_true(const ekv_taglist *l, const etagkv_meta *cur)
{
    if (cur == NULL)
        return 1;
    if (l->any)
        return 0;
    return !ekv_taglist_match_weak(l, cur->etag);
}

/* The outcome of a failed step: *step says which one it was. */
static etagkv_status decided(etagkv_status st, etagkv_cond_step which,
                             etagkv_cond_step *step)
{
    *step = which;
    return st;
}

etagkv_status etagkv_cond_explain(const etagkv_cond *c, etagkv_method method,
                                  const etagkv_meta *current,
                                  etagkv_cond_step *step_out)
{
    etagkv_cond_step local;
    etagkv_cond_step *step = step_out != NULL ? step_out : &local;
    int is_read;

    *step = ETAGKV_STEP_NONE;
    switch (method) {
    case ETAGKV_METHOD_GET:
    case ETAGKV_METHOD_HEAD: is_read = 1; break;
    case ETAGKV_METHOD_PUT:
    case ETAGKV_METHOD_DELETE: is_read = 0; break;
    default: return ETAGKV_INVALID_ARGUMENT;
    }
    if (current != NULL && !current->exists)
        current = NULL;

    /* §13.2.1: conditions are evaluated only when the request would
     * otherwise succeed; a read or delete of nothing is a 404 regardless. */
    if (current == NULL && method != ETAGKV_METHOD_PUT)
        return ETAGKV_NOT_FOUND;
    if (c == NULL)
        return ETAGKV_OK;

    /* DESIGN §2: ETagKV-If-Revision comes first, under the same §13.2.1
     * rule as If-Match (hence after step 0).  0 asserts absence. */
    if (c->if_revision_present) {
        int holds =
            c->if_revision == 0
                ? current == NULL
                : current != NULL && current->mod_revision == c->if_revision;

        if (!holds)
            return decided(ETAGKV_PRECONDITION_FAILED, ETAGKV_STEP_IF_REVISION,
                           step);
    }

    /* §13.2.2 step 1, else step 2.  A missing key has no modification date,
     * so If-Unmodified-Since cannot be evaluated and is ignored (§13.1.4). */
    if (c->if_match.present) {
        if (!if_match_true(&c->if_match, current))
            return decided(ETAGKV_PRECONDITION_FAILED, ETAGKV_STEP_IF_MATCH,
                           step);
    } else if (c->unmodified_since_state == DATE_VALID && current != NULL) {
        if (ETAGKV_META_LAST_MODIFIED(current) > c->unmodified_since_s)
            return decided(ETAGKV_PRECONDITION_FAILED,
                           ETAGKV_STEP_IF_UNMODIFIED_SINCE, step);
    }

    /* Step 3, else step 4 (GET/HEAD only). */
    if (c->if_none_match.present) {
        if (!if_none_match_true(&c->if_none_match, current))
            return decided(is_read ? ETAGKV_NOT_MODIFIED
                                   : ETAGKV_PRECONDITION_FAILED,
                           ETAGKV_STEP_IF_NONE_MATCH, step);
    } else if (is_read && c->modified_since_state == DATE_VALID &&
               current != NULL) {
        if (ETAGKV_META_LAST_MODIFIED(current) <= c->modified_since_s)
            return decided(ETAGKV_NOT_MODIFIED, ETAGKV_STEP_IF_MODIFIED_SINCE,
                           step);
    }
    return ETAGKV_OK;
}

etagkv_status etagkv_cond_evaluate(const etagkv_cond *c, etagkv_method method,
                                   const etagkv_meta *current)
{
    return etagkv_cond_explain(c, method, current, NULL);
}

const char *etagkv_cond_step_name(etagkv_cond_step step)
{
    switch (step) {
    case ETAGKV_STEP_NONE: return "none";
    case ETAGKV_STEP_IF_REVISION: return "ETagKV-If-Revision";
    case ETAGKV_STEP_IF_MATCH: return "If-Match";
    case ETAGKV_STEP_IF_UNMODIFIED_SINCE: return "If-Unmodified-Since";
    case ETAGKV_STEP_IF_NONE_MATCH: return "If-None-Match";
    case ETAGKV_STEP_IF_MODIFIED_SINCE: return "If-Modified-Since";
    }
    return "unknown";
}

etagkv_cond_step ekv_cond_step_of(const etagkv_cond *c, etagkv_method method,
                                  etagkv_status outcome,
                                  const etagkv_meta *state)
{
    etagkv_cond_step step = ETAGKV_STEP_NONE;

    if (outcome == ETAGKV_PRECONDITION_FAILED)
        (void)etagkv_cond_explain(c, method, state, &step);
    return step;
}

/* ---- copies ----------------------------------------------------------------
 */

/* Copy list src into the zeroed list dst; -1 when out of memory (dst then
 * holds what it got, for ekv_taglist_clear()). */
static int copy_list(ekv_taglist *dst, const ekv_taglist *src)
{
    *dst = *src;
    dst->tags = NULL;
    dst->buf = NULL;
    dst->cap = src->n;
    dst->buf_cap = src->buf_len;
    if (src->n > 0) {
        dst->tags = malloc(src->n * sizeof(*src->tags));
        if (dst->tags == NULL)
            return -1;
        memcpy(dst->tags, src->tags, src->n * sizeof(*src->tags));
    }
    if (src->buf_len > 0) {
        dst->buf = malloc(src->buf_len);
        if (dst->buf == NULL)
            return -1;
        memcpy(dst->buf, src->buf, src->buf_len);
    }
    return 0;
}

etagkv_status ekv_cond_copy(const etagkv_cond *c, etagkv_cond **out)
{
    etagkv_cond *d;

    *out = NULL;
    if (c == NULL)
        return ETAGKV_OK;
    d = calloc(1, sizeof(*d));
    if (d == NULL)
        return ETAGKV_NO_MEMORY;
    *d = *c;
    memset(&d->if_match, 0, sizeof(d->if_match));
    memset(&d->if_none_match, 0, sizeof(d->if_none_match));
    if (copy_list(&d->if_match, &c->if_match) != 0 ||
        copy_list(&d->if_none_match, &c->if_none_match) != 0) {
        etagkv_cond_free(d);
        return ETAGKV_NO_MEMORY;
    }
    *out = d;
    return ETAGKV_OK;
}

int ekv_cond_if_revision(const etagkv_cond *c, uint64_t *revision)
{
    if (c == NULL || !c->if_revision_present)
        return 0;
    *revision = c->if_revision;
    return 1;
}

etagkv_status ekv_cond_only(const etagkv_cond *c, etagkv_cond_step step,
                            etagkv_cond **out)
{
    etagkv_status st = ekv_cond_copy(c, out);
    etagkv_cond *d = *out;

    if (st != ETAGKV_OK || d == NULL || step == ETAGKV_STEP_NONE)
        return st;
    if (step != ETAGKV_STEP_IF_MATCH)
        ekv_taglist_clear(&d->if_match);
    if (step != ETAGKV_STEP_IF_NONE_MATCH)
        ekv_taglist_clear(&d->if_none_match);
    if (step != ETAGKV_STEP_IF_MODIFIED_SINCE)
        d->modified_since_state = DATE_ABSENT;
    if (step != ETAGKV_STEP_IF_UNMODIFIED_SINCE)
        d->unmodified_since_state = DATE_ABSENT;
    if (step != ETAGKV_STEP_IF_REVISION)
        d->if_revision_present = 0;
    return ETAGKV_OK;
}

/* ---- canonical form, for idempotency fingerprints ------------------------ */

static size_t list_bytes(const ekv_taglist *l)
{
    return 2 + 8 + l->n * 9 + l->buf_len;
}

static uint8_t *put_list(uint8_t *p, const ekv_taglist *l)
{
    *p++ = (uint8_t)l->present;
    *p++ = (uint8_t)l->any;
    ekv_put_le64(p, l->n);
    p += 8;
    for (size_t i = 0; i < l->n; i++) {
        *p++ = (uint8_t)l->tags[i].weak;
        ekv_put_le64(p, l->tags[i].len);
        p += 8;
        memcpy(p, l->buf + l->tags[i].off, l->tags[i].len);
        p += l->tags[i].len;
    }
    return p;
}

static uint8_t *put_date(uint8_t *p, enum date_state state, int64_t t)
{
    *p++ = (uint8_t)state;
    ekv_put_le64(p, state == DATE_VALID ? (uint64_t)t : 0);
    return p + 8;
}

etagkv_status ekv_cond_serialize(const etagkv_cond *c, uint8_t **out,
                                 size_t *len)
{
    static const etagkv_cond none;
    uint8_t *buf, *p;
    size_t n;

    if (c == NULL)
        c = &none;
    n = list_bytes(&c->if_match) + list_bytes(&c->if_none_match) + 3 * 9;
    buf = malloc(n);
    if (buf == NULL)
        return ETAGKV_NO_MEMORY;
    p = put_list(buf, &c->if_match);
    p = put_list(p, &c->if_none_match);
    p = put_date(p, c->modified_since_state, c->modified_since_s);
    p = put_date(p, c->unmodified_since_state, c->unmodified_since_s);
    /* Only when sent: the fingerprints of requests without If-Revision
     * stay those recorded before it existed, so their idempotency keys
     * still replay after an upgrade.  The parts before are
     * self-delimiting, so the form stays unambiguous. */
    if (c->if_revision_present) {
        *p++ = 1;
        ekv_put_le64(p, c->if_revision);
        p += 8;
    }
    *out = buf;
    *len = (size_t)(p - buf);
    return ETAGKV_OK;
}
