/*
 * etcdutil.h -- what a suite run by ETCD_MEMBERS=3 tests/etcd/with_etcd.sh
 * asks of the cluster itself, through etcd's JSON gateway (libcurl,
 * jansson): which member leads (test_etcd_cluster.c and test_ha.c kill
 * it), and any other gateway request (test_etcd.c counts keys).
 */
#ifndef ETAGKV_ETCDUTIL_H
#define ETAGKV_ETCDUTIL_H

#include <jansson.h>
#include <sys/types.h>

/* POST body (consumed) to the gateway of the member at endpoint
 * (HOST:PORT), at path (e.g. "/v3/kv/range"); its JSON answer (the
 * caller's).  Fails the test if etcd does not answer with JSON. */
json_t *tu_etcd_post(const char *endpoint, const char *path, json_t *body);

/* The process id (from ETAGKV_TEST_ETCD_PIDS, in the order of the
 * endpoints of ETAGKV_TEST_STORE) of the member that is the cluster's
 * leader, as each member's /v3/maintenance/status reports it.  Fails the
 * test (Check) if a member does not answer or none leads. */
pid_t tu_etcd_leader_pid(void);

#endif
