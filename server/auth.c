/*
 * auth.c -- secrets: the bearer tokens (--token-file) and the files that
 * hold them or the TLS key.
 *
 * A token file holds one token per line (RFC 6750 b64token, or any run of
 * visible ASCII); empty lines are skipped.  Each token is kept whole,
 * whatever its length up to TOKEN_MAX_BYTES.  A file that anyone but its
 * owner may read or write is refused, as ssh refuses such a private key:
 * the tokens would no longer be secret.
 *
 * Each token also names a client identity: the first SRV_IDENTITY_BYTES
 * of SHA-256 over a fixed label and the token.  It is stable across
 * restarts and file reorderings, differs between tokens, and does not
 * reveal the token; the server prefixes the Idempotency-Key with it, so
 * that one client's recorded outcomes are never another's (admit.c).
 */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gnutls/crypto.h>

/* Largest secret file read (a token file, a PEM key or certificate). */
#define SECRET_FILE_MAX ((size_t)1 << 20)

/* A longer token could never be sent: libmicrohttpd holds a request's
 * whole header block in 32 KiB. */
#define TOKEN_MAX_BYTES 16384

struct token {
    char *text;
    size_t len;
    unsigned char identity[SRV_IDENTITY_BYTES];
};

struct srv_tokens {
    struct token *v;
    size_t n;
};

void srv_wipe(void *p, size_t n)
{
    /* Through a volatile pointer, so the stores are not optimised away
     * as dead (srv_wipe() is not in POSIX). */
    volatile unsigned char *b = p;

    while (n-- > 0)
        *b++ = 0;
}

char *srv_read_file(const char *path, int secret, size_t *len)
{
    struct stat st;
    char *buf = NULL;
    ssize_t got = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0 || fstat(fd, &st) != 0) {
        fprintf(stderr, "etagkv-server: %s: %s\n", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode) || (size_t)st.st_size > SECRET_FILE_MAX) {
        fprintf(stderr,
                "etagkv-server: %s: not a regular file of at most "
                "1 MiB\n",
                path);
        goto fail;
    }
    if (secret && (st.st_mode & 077) != 0) {
        fprintf(stderr,
                "etagkv-server: %s: other users may access it (mode %04o): "
                "a secret must be its owner's alone (chmod 600)\n",
                path, (unsigned)(st.st_mode & 07777));
        goto fail;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL)
        goto fail;
    while (got < st.st_size) {
        ssize_t k = read(fd, buf + got, (size_t)(st.st_size - got));

        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            fprintf(stderr, "etagkv-server: %s: %s\n", path,
                    k < 0 ? strerror(errno) : "shorter than its size");
            goto fail;
        }
        got += k;
    }
    close(fd);
    buf[got] = '\0';
    *len = (size_t)got;
    return buf;
fail:
    if (fd >= 0)
        close(fd);
    free(buf);
    return NULL;
}

/* The identity of a token (see the top of the file); 0 or -1. */
static int identity_of(struct token *t)
{
    static const char label[] = "etagkv idempotency scope";
    unsigned char digest[32];
    gnutls_hash_hd_t h;

    if (gnutls_hash_init(&h, GNUTLS_DIG_SHA256) != 0)
        return -1;
    if (gnutls_hash(h, label, sizeof label) != 0 ||
        gnutls_hash(h, t->text, t->len) != 0) {
        gnutls_hash_deinit(h, NULL);
        return -1;
    }
    gnutls_hash_deinit(h, digest);
    memcpy(t->identity, digest, SRV_IDENTITY_BYTES);
    return 0;
}

/* Add the line [p, p+n) as a token; 0, or -1 (reported). */
static int add_token(struct srv_tokens *t, const char *file, size_t lineno,
                     const char *p, size_t n)
{
    struct token *tok;
    size_t i;

    for (i = 0; i < n; i++)
        if (p[i] <= ' ' || p[i] >= 0x7f)
            break;
    if (i < n || n > TOKEN_MAX_BYTES) {
        fprintf(stderr,
                "etagkv-server: %s:%zu: a token is 1 to %d bytes of visible "
                "ASCII, no spaces\n",
                file, lineno, TOKEN_MAX_BYTES);
        return -1;
    }
    /* Two equal lines would make the match ambiguous (srv_tokens_match). */
    for (i = 0; i < t->n; i++)
        if (t->v[i].len == n && memcmp(t->v[i].text, p, n) == 0) {
            fprintf(stderr, "etagkv-server: %s:%zu: the same token again\n",
                    file, lineno);
            return -1;
        }
    tok = realloc(t->v, (t->n + 1) * sizeof *t->v);
    if (tok == NULL)
        return -1;
    t->v = tok;
    tok = &t->v[t->n];
    tok->text = malloc(n);
    if (tok->text == NULL)
        return -1;
    memcpy(tok->text, p, n);
    tok->len = n;
    t->n++;
    if (identity_of(tok) != 0) {
        fprintf(stderr, "etagkv-server: SHA-256 is not available\n");
        return -1;
    }
    return 0;
}

int srv_tokens_load(const char *file, struct srv_tokens **out)
{
    struct srv_tokens *t = calloc(1, sizeof *t);
    size_t len = 0, lineno = 0;
    char *text = srv_read_file(file, 1, &len), *p, *end;

    *out = NULL;
    if (t == NULL || text == NULL)
        goto fail;
    for (p = text; p < text + len; p = end + 1) {
        size_t n;

        end = memchr(p, '\n', (size_t)(text + len - p));
        if (end == NULL)
            end = text + len;
        lineno++;
        n = (size_t)(end - p);
        if (n > 0 && p[n - 1] == '\r')
            n--;
        if (n > 0 && add_token(t, file, lineno, p, n) != 0)
            goto fail;
    }
    if (t->n == 0) {
        fprintf(stderr, "etagkv-server: %s: no token in it\n", file);
        goto fail;
    }
    srv_wipe(text, len);
    free(text);
    *out = t;
    return 0;
fail:
    if (text != NULL)
        srv_wipe(text, len);
    free(text);
    srv_tokens_free(t);
    return -1;
}

void srv_tokens_free(struct srv_tokens *t)
{
    size_t i;

    if (t == NULL)
        return;
    for (i = 0; i < t->n; i++) {
        srv_wipe(t->v[i].text, t->v[i].len);
        free(t->v[i].text);
    }
    free(t->v);
    free(t);
}

/* 0 if got equals want, else non-zero.  The time taken depends only on
 * got_len, never on want or on where the two first differ. */
static unsigned differ(const struct token *want, const char *got,
                       size_t got_len)
{
    volatile unsigned char diff = got_len != want->len;
    size_t i;

    for (i = 0; i < got_len; i++)
        diff |= (unsigned char)(got[i] ^ want->text[i % want->len]);
    return diff;
}

const unsigned char *srv_tokens_match(const struct srv_tokens *t,
                                      const char *got, size_t got_len)
{
    size_t i, hit = 0;

    /* Every token is compared, and the match is selected with a mask, not
     * a branch: the time depends on got_len and the number of tokens
     * only, not on which token matched or how much of one did. */
    for (i = 0; i < t->n; i++) {
        size_t equal = (size_t)(differ(&t->v[i], got, got_len) == 0);

        hit |= (i + 1) & ((size_t)0 - equal);
    }
    return hit == 0 ? NULL : t->v[hit - 1].identity;
}
