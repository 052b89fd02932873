/*
 * test_record.c -- the on-disk record layout: round trip, and junk that
 * must decode as ETAGKV_CORRUPT instead of being trusted.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "testutil.h"

static size_t encode(uint8_t *buf, const char *ct, const char *value)
{
    ekv_record r;

    memset(&r, 0, sizeof(r));
    r.created_ns = 0x0102030405060708ull;
    r.modified_ns = 0x1112131415161718ull;
    r.create_revision = 7;
    r.mod_revision = 0xffffffffffffffffull;
    r.version = 3;
    ekv_hash128(value, strlen(value), r.hash);
    r.content_type = ct;
    r.content_type_len = strlen(ct);
    r.value = value;
    r.value_len = strlen(value);
    ekv_record_encode(buf, &r);
    return ekv_record_size(r.content_type_len, r.value_len);
}

START_TEST(a_record_round_trips_with_every_field)
{
    uint8_t buf[256];
    size_t n = encode(buf, "text/plain", "hello");
    ekv_record r;
    etagkv_meta m;
    char etag[ETAGKV_ETAG_SIZE];

    ck_assert_uint_eq(n, EKV_RECORD_HEADER_BYTES + 10 + 5);
    ck_assert_uint_eq(buf[0], EKV_RECORD_FORMAT);
    /* Little-endian on disk whatever the host: byte 8 is created's LSB. */
    ck_assert_uint_eq(buf[8], 0x08);
    ck_assert_int_eq(ekv_record_decode(buf, n, &r), ETAGKV_OK);
    ck_assert_uint_eq(r.created_ns, 0x0102030405060708ull);
    ck_assert_uint_eq(r.modified_ns, 0x1112131415161718ull);
    ck_assert_uint_eq(r.mod_revision, 0xffffffffffffffffull);
    ck_assert_uint_eq(r.value_len, 5);
    ck_assert_mem_eq(r.value, "hello", 5);
    ekv_record_meta(&r, &m);
    etagkv_etag_compute("hello", 5, etag);
    ck_assert_str_eq(m.etag, etag);
    ck_assert_str_eq(m.content_type, "text/plain");
    ck_assert_int_eq(m.exists, 1);
    ck_assert_uint_eq(m.version, 3);
}
END_TEST

START_TEST(junk_records_decode_as_corrupt)
{
    uint8_t buf[256];
    size_t n = encode(buf, "text/plain", "hello");
    ekv_record r;

    for (size_t len = 0; len < EKV_RECORD_HEADER_BYTES + 10; len++)
        ck_assert_int_eq(ekv_record_decode(buf, len, &r), ETAGKV_CORRUPT);
    buf[0] = 2; /* a future format */
    ck_assert_int_eq(ekv_record_decode(buf, n, &r), ETAGKV_CORRUPT);
    buf[0] = EKV_RECORD_FORMAT;
    buf[2] = 0; /* content type length 0 */
    buf[3] = 0;
    ck_assert_int_eq(ekv_record_decode(buf, n, &r), ETAGKV_CORRUPT);
    buf[2] = 0xff; /* 65535 > 255 */
    buf[3] = 0xff;
    ck_assert_int_eq(ekv_record_decode(buf, n, &r), ETAGKV_CORRUPT);
}
END_TEST

START_TEST(content_types_must_be_safe_header_values)
{
    static const struct {
        const char *ct;
        int ok;
    } t[] = {
        {"text/plain", 1},
        {"application/json; charset=utf-8", 1},
        {"a\tb", 1},
        {"", 0},
        {" text/plain", 0},
        {"text/plain ", 0},
        {"text/plain\r\nSet-Cookie: x", 0}, /* header injection */
        {"caf\xc3\xa9", 0},                 /* not ASCII */
        {"a\x7f", 0},
    };
    char long_ct[ETAGKV_CONTENT_TYPE_MAX + 2];

    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        ck_assert_msg(ekv_content_type_valid(t[i].ct, strlen(t[i].ct)) ==
                          t[i].ok,
                      "row %zu", i);
    memset(long_ct, 'a', sizeof(long_ct));
    ck_assert_int_eq(ekv_content_type_valid(long_ct, ETAGKV_CONTENT_TYPE_MAX),
                     1);
    ck_assert_int_eq(
        ekv_content_type_valid(long_ct, ETAGKV_CONTENT_TYPE_MAX + 1), 0);
    ck_assert_int_eq(ekv_content_type_valid(NULL, 0), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("record");
    TCase *tc = tcase_create("record");

    tcase_add_test(tc, a_record_round_trips_with_every_field);
    tcase_add_test(tc, junk_records_decode_as_corrupt);
    tcase_add_test(tc, content_types_must_be_safe_header_values);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
