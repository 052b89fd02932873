/*
 * test_library.c -- what belongs to the library as a whole
 * (lib/library.c): the version of the code linked, and etagkv_free() for
 * the memory the library hands out.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

START_TEST(version_reports_the_linked_library_and_accepts_null)
{
    int major = -1, minor = -1, patch = -1;
    char want[32];
    const char *v = etagkv_version(&major, &minor, &patch);

    /* Built from this tree, the linked library is the header's version. */
    ck_assert_int_eq(major, ETAGKV_VERSION_MAJOR);
    ck_assert_int_eq(minor, ETAGKV_VERSION_MINOR);
    ck_assert_int_eq(patch, ETAGKV_VERSION_PATCH);
    ck_assert_str_eq(v, ETAGKV_VERSION_STRING);
    /* The string and the numbers say the same thing. */
    snprintf(want, sizeof(want), "%d.%d.%d", major, minor, patch);
    ck_assert_str_eq(v, want);
    /* Each output may be NULL; the string is static. */
    major = minor = patch = -1;
    ck_assert_ptr_eq(etagkv_version(NULL, &minor, NULL), v);
    ck_assert_int_eq(minor, ETAGKV_VERSION_MINOR);
    ck_assert_ptr_eq(etagkv_version(NULL, NULL, NULL), v);
    ck_assert_ptr_eq(etagkv_version(&major, NULL, &patch), v);
    ck_assert_int_eq(major, ETAGKV_VERSION_MAJOR);
    ck_assert_int_eq(patch, ETAGKV_VERSION_PATCH);
}
END_TEST

START_TEST(version_and_free_neither_record_nor_clear_the_detail)
{
    etagkv_cond *c;

    ck_assert_int_eq(etagkv_cond_new(&c), ETAGKV_OK);
    ck_assert_int_eq(etagkv_cond_add(c, ETAGKV_IF_MATCH, "x", 1),
                     ETAGKV_INVALID_HEADER);
    ck_assert_str_ne(etagkv_last_error_detail(), "");
    (void)etagkv_version(NULL, NULL, NULL);
    etagkv_free(NULL);
    ck_assert_str_ne(etagkv_last_error_detail(), "");
    etagkv_cond_free(c);
}
END_TEST

/* The values etagkv_get() returns go back through etagkv_free(); under
 * ASan or valgrind (tools/valgrind.sh) a mismatch or leak fails here. */
START_TEST(values_from_get_are_released_with_etagkv_free)
{
    char *dir = tu_mkdtemp();
    etagkv_store *store = tu_open(dir, NULL);
    void *v = NULL;
    size_t n = 0;

    ck_assert_int_eq(etagkv_put(store, "k", 1, "value", 5, NULL, NULL, NULL),
                     ETAGKV_CREATED);
    ck_assert_int_eq(etagkv_put(store, "e", 1, NULL, 0, NULL, NULL, NULL),
                     ETAGKV_CREATED);
    ck_assert_int_eq(etagkv_get(store, "k", 1, NULL, &v, &n, NULL), ETAGKV_OK);
    ck_assert_uint_eq(n, 5);
    ck_assert_int_eq(memcmp(v, "value", 5), 0);
    etagkv_free(v);
    /* An empty value is still an allocation (never NULL), freed the same
     * way. */
    ck_assert_int_eq(etagkv_get(store, "e", 1, NULL, &v, &n, NULL), ETAGKV_OK);
    ck_assert_ptr_nonnull(v);
    ck_assert_uint_eq(n, 0);
    etagkv_free(v);
    /* On failure there is nothing to free: *value_out is NULL, which
     * etagkv_free() accepts. */
    v = (void *)&v;
    ck_assert_int_eq(etagkv_get(store, "absent", 6, NULL, &v, &n, NULL),
                     ETAGKV_NOT_FOUND);
    ck_assert_ptr_null(v);
    etagkv_free(v);
    etagkv_store_close(store);
    tu_rmdir_free(dir);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("library");
    TCase *tc = tcase_create("library");

    tcase_add_test(tc, version_reports_the_linked_library_and_accepts_null);
    tcase_add_test(tc, version_and_free_neither_record_nor_clear_the_detail);
    tcase_add_test(tc, values_from_get_are_released_with_etagkv_free);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
