#!/usr/bin/env python3
"""median.py -- medians of several runs of the benchmarks.

    bench/median.py RUN1.jsonl RUN2.jsonl RUN3.jsonl ...
    bench/median.py --http [--jsonl OUT] RAW.jsonl [FLUSHES.jsonl]
    bench/median.py --etcd [--jsonl OUT] RAW.jsonl

Reads the JSON lines that bench_embedded, bench_contended, bench_transfer
and bench_idem
write (bench/run.sh collects them in bench-results.jsonl; keep one file per
run) and prints Markdown tables of the per-scenario medians.  Every
figure, the ratio included, is the median over the runs of that figure:
the ratio is the median of the per-run ratios, each taken within one run,
not a ratio of medians.

--http: the same for bench_http's lines (bench/run_http.sh; each line
carries its run number): operations/s with the lean client and with
libcurl, the server's CPU time per successful operation, and the ratios
against the peer from the same run; then the targets of issue 14 and the
flush counts (bench/flushes.py's lines).  With --jsonl, one summary line
per table row is appended to OUT.

--etcd: run_http.sh --etcd-only's lines: per cell, etagkv on etcd (one and
two front ends), etcd's own Txn CAS and etagkv on LMDB, each with its
median ops/s, p50/p99, the median of its per-run ratios to etcd's CAS, and
the CPU per operation of its server and of etcd.
"""
import json
import statistics
import sys


def load(paths):
    runs = {}
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if not line.startswith("{"):
                    continue
                row = json.loads(line)
                # bench_embedded names several operations per scenario.
                key = row["scenario"]
                if isinstance(row.get("etagkv"), str):
                    key += "\0" + row["etagkv"]
                runs.setdefault(key, []).append(row)
    return runs


def med(rows, field):
    vals = [r[field] for r in rows if isinstance(r.get(field), (int, float))]
    return statistics.median(vals) if vals else None


def fmt(v, digits=0):
    if v is None:
        return "—"
    if digits == 0:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def embedded(runs):
    print("| scenario | etagkv | ops/s | baseline | ops/s | ratio | runs |")
    print("|---|---|---:|---|---:|---:|---:|")
    for name, rows in runs.items():
        if not name.startswith("embedded/"):
            continue
        print(f"| {rows[0]['scenario']} | {rows[0]['etagkv']} | {fmt(med(rows, 'etagkv_ops_per_s'))}"
              f" | {rows[0]['baseline']} | {fmt(med(rows, 'baseline_ops_per_s'))}"
              f" | **{fmt(med(rows, 'ratio'), 2)}×** | {len(rows)} |")


def contended(runs):
    print("| scenario | commits/s | 412/s | p50 / p99 ms | mean batch"
          " | raw LMDB commits/s | p50 / p99 ms | ratio | runs |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, rows in runs.items():
        if not name.startswith("contended/"):
            continue
        print(f"| {name.removeprefix('contended/')}"
              f" | {fmt(med(rows, 'etagkv_commits_per_s'))}"
              f" | {fmt(med(rows, 'etagkv_412_per_s'))}"
              f" | {fmt(med(rows, 'etagkv_p50_ms'), 2)} / {fmt(med(rows, 'etagkv_p99_ms'), 2)}"
              f" | {fmt(med(rows, 'mean_batch'), 1)}"
              f" | {fmt(med(rows, 'baseline_commits_per_s'))}"
              f" | {fmt(med(rows, 'baseline_p50_ms'), 2)} / {fmt(med(rows, 'baseline_p99_ms'), 2)}"
              f" | **{fmt(med(rows, 'ratio'), 2)}×** | {len(rows)} |")


def transfer(runs):
    print("| scenario | transfers/s | conflicts/s | p50 / p99 ms | mean batch"
          " | raw LMDB transfers/s | p50 / p99 ms | ratio | runs |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, rows in runs.items():
        if not name.startswith("transfer/"):
            continue
        print(f"| {name.removeprefix('transfer/')}"
              f" | {fmt(med(rows, 'etagkv_transfers_per_s'))}"
              f" | {fmt(med(rows, 'etagkv_conflicts_per_s'))}"
              f" | {fmt(med(rows, 'etagkv_p50_ms'), 2)} / {fmt(med(rows, 'etagkv_p99_ms'), 2)}"
              f" | {fmt(med(rows, 'mean_batch'), 1)}"
              f" | {fmt(med(rows, 'baseline_transfers_per_s'))}"
              f" | {fmt(med(rows, 'baseline_p50_ms'), 2)} / {fmt(med(rows, 'baseline_p99_ms'), 2)}"
              f" | **{fmt(med(rows, 'ratio'), 2)}×** | {len(rows)} |")


def idempotency(runs):
    print("| scenario | etagkv | baseline | ratio | runs |")
    print("|---|---:|---:|---:|---:|")
    for name, rows in runs.items():
        if not name.startswith("idempotency/"):
            continue
        if "etagkv_ops_per_s" in rows[0]:
            ours = f"{fmt(med(rows, 'etagkv_ops_per_s'))} ops/s ({rows[0]['etagkv']})"
            base = f"{fmt(med(rows, 'baseline_ops_per_s'))} ops/s ({rows[0]['baseline']})"
        else:
            ours = f"p99 {fmt(med(rows, 'p99_us_purging'), 1)} µs, keys expiring and purged"
            base = f"p99 {fmt(med(rows, 'p99_us_no_expiry'), 1)} µs, no key expires"
        print(f"| {rows[0]['scenario']} | {ours} | {base} | **{fmt(med(rows, 'ratio'), 2)}×** | {len(rows)} |")


# ---- HTTP (bench_http, run_http.sh) ----------------------------------------

# Each scenario's peer: the baseline of its ratios.
HTTP_PEERS = {"rmw-1000": ["redis", "etcd"], "rmw-hot": ["redis", "etcd"],
              "get": ["nginx"], "get304": ["nginx"],
              "transfer": ["redis", "etcd"], "lock": ["redis", "etcd"]}

# The lean client of each target: RESP for Redis, raw HTTP for the others.
def lean_of(target):
    return "resp" if target == "redis" else "lean"


def http_load(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                row = json.loads(line)
                if row.get("bench") == "http":
                    rows.append(row)
    return rows


def per_run(rows, scen, size, conns, target, client, field):
    """{run: value} for one cell."""
    out = {}
    for r in rows:
        if (r["scenario"], r["value_bytes"], r["conns"], r["target"],
                r.get("client", "libcurl")) == (scen, size, conns, target, client):
            v = r.get(field)
            if isinstance(v, (int, float)) and v >= 0:
                out[r.get("run", 1)] = v
    return out


def ratio_med(a, b):
    """Median of the per-run ratios a/b over the runs that have both."""
    rs = [a[k] / b[k] for k in a if k in b and b[k] > 0]
    return statistics.median(rs) if rs else None


def fx(v):
    """A ratio, or a dash when not measured."""
    return "—" if v is None else f"{v:.2f}×"


def medv(d):
    return statistics.median(d.values()) if d else None


def http_table(rows, jsonl):
    cells = sorted({(r["scenario"], r["value_bytes"], r["conns"]) for r in rows},
                   key=lambda c: (list(HTTP_PEERS).index(c[0])
                                  if c[0] in HTTP_PEERS else 9, c[1], c[2]))
    print("| scenario | bytes | conns | etagkv ops/s (lean) | etagkv ops/s (libcurl)"
          " | etagkv server µs/op | peer | peer ops/s (lean) | peer ops/s (libcurl)"
          " | peer server µs/op | ratio ops/s (lean) | ratio ops/s (libcurl)"
          " | ratio server µs/op | runs |")
    print("|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    ratios = {}
    for scen, size, conns in cells:
        ours = per_run(rows, scen, size, conns, "etagkv", "lean", "ok_per_s")
        ours_c = per_run(rows, scen, size, conns, "etagkv", "libcurl", "ok_per_s")
        ours_cpu = per_run(rows, scen, size, conns, "etagkv", "lean",
                           "server_cpu_us_per_op")
        for peer in HTTP_PEERS.get(scen, []):
            base = per_run(rows, scen, size, conns, peer, lean_of(peer), "ok_per_s")
            base_c = per_run(rows, scen, size, conns, peer, "libcurl", "ok_per_s")
            base_cpu = per_run(rows, scen, size, conns, peer, lean_of(peer),
                               "server_cpu_us_per_op")
            if not base and not base_c:
                continue
            r_ops = ratio_med(ours, base)
            r_ops_c = ratio_med(ours_c, base_c)
            r_cpu = ratio_med(ours_cpu, base_cpu)
            ratios[scen, size, conns, peer] = (r_ops, r_cpu)
            runs = len(set(ours) | set(base))
            print(f"| {scen} | {size} | {conns} | {fmt(medv(ours))} | {fmt(medv(ours_c))}"
                  f" | {fmt(medv(ours_cpu), 1)} | {peer} | {fmt(medv(base))}"
                  f" | {fmt(medv(base_c))} | {fmt(medv(base_cpu), 1)}"
                  f" | **{fx(r_ops)}** | {fx(r_ops_c)}"
                  f" | {fx(r_cpu)} | {runs} |")
            if jsonl is not None:
                jsonl.write(json.dumps({
                    "bench": "http-median",
                    "scenario": f"http/{scen}/{size}B/sync/{conns}c",
                    "baseline": peer, "runs": runs,
                    "etagkv_ok_per_s_lean": medv(ours),
                    "etagkv_ok_per_s_libcurl": medv(ours_c),
                    "etagkv_server_cpu_us_per_op": medv(ours_cpu),
                    "baseline_ok_per_s_lean": medv(base),
                    "baseline_ok_per_s_libcurl": medv(base_c),
                    "baseline_server_cpu_us_per_op": medv(base_cpu),
                    "ratio": r_ops, "ratio_libcurl": r_ops_c,
                    "ratio_server_cpu": r_cpu}) + "\n")
    return ratios


def http_targets(ratios):
    """Issue 14's targets at 64 connections: met or missed, by how much."""
    checks = [("RMW 1,000 keys, ops/s vs Redis", "rmw-1000", "redis", 0, 1.0, ">="),
              ("RMW 1,000 keys, ops/s vs etcd", "rmw-1000", "etcd", 0, 5.0, ">="),
              ("RMW 1,000 keys, server CPU/op vs Redis", "rmw-1000", "redis", 1, 1.0, "<="),
              ("RMW hot key, ops/s vs Redis", "rmw-hot", "redis", 0, 1.0, ">="),
              ("GET 200, server CPU/op vs nginx", "get", "nginx", 1, 1.0, "<="),
              ("GET 304, server CPU/op vs nginx", "get304", "nginx", 1, 1.0, "<="),
              ("Transfer (issue 12), ops/s vs etcd", "transfer", "etcd", 0, 5.0, ">="),
              ("Transfer (issue 12), ops/s vs Redis", "transfer", "redis", 0, 1.0, ">="),
              ("Lock cycles (issue 19, 16 clients), ops/s vs etcd", "lock", "etcd", 0, 3.0, ">="),
              ("Lock cycles (issue 19, 16 clients), ops/s vs Redis", "lock", "redis", 0, 1.0, ">=")]
    print("| target (64 connections unless said, lean clients) | bytes | ratio | wanted | |")
    print("|---|---:|---:|---:|---|")
    for what, scen, peer, idx, want, op in checks:
        conns = 16 if scen == "lock" else 64
        for size in ((100,) if scen in ("transfer", "lock") else (100, 4096)):
            r = ratios.get((scen, size, conns, peer))
            v = r[idx] if r else None
            if v is None:
                verdict = "not measured"
            elif (v >= want) if op == ">=" else (v <= want):
                verdict = "met"
            else:
                verdict = "MISSED"
            print(f"| {what} | {size} | {fx(v)} | {op} {want:.1f}× | {verdict} |")


def http_flushes(path):
    print("| server | acknowledged writes | flush calls | flushes per write"
          " | transactions | flushes per transaction | calls |")
    print("|---|---:|---:|---:|---:|---:|---|")
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.startswith("{"):
                continue
            r = json.loads(line)
            if r.get("bench") != "http-flushes":
                continue
            per_write = r["flushes"] / r["acked_writes"] if r["acked_writes"] else None
            txns = r.get("transactions")
            per_txn = r["flushes"] / txns if txns else None
            calls = ", ".join(f"{k} {v}" for k, v in sorted(r["calls"].items()))
            print(f"| {r['server']} | {fmt(r['acked_writes'])} | {fmt(r['flushes'])}"
                  f" | {fmt(per_write, 2)} | {fmt(txns)} | {fmt(per_txn, 2)} | {calls} |")


def http_main(args):
    jsonl = None
    if args and args[0] == "--jsonl":
        jsonl = open(args[1], "a", encoding="utf-8")
        args = args[2:]
    if not args:
        sys.exit(__doc__)
    rows = http_load(args[0])
    ratios = http_table(rows, jsonl)
    print()
    http_targets(ratios)
    if len(args) > 1:
        print()
        http_flushes(args[1])
    if jsonl is not None:
        jsonl.close()


# ---- the etcd backend (run_http.sh --etcd-only, issue 17) ------------------

ETCD_TARGETS = ["etagkv-etcd", "etagkv-etcd2", "etcd", "etagkv"]
ETCD_NAMES = {"etagkv-etcd": "etagkv on etcd, 1 front end",
              "etagkv-etcd2": "etagkv on etcd, 2 front ends",
              "etcd": "etcd's own Txn CAS",
              "etagkv": "etagkv on LMDB"}


def etcd_main(args):
    """One row per cell and target: median ops/s, p50/p99, the median of the
    per-run ratios to etcd's own (CAS, or Range for get), the front ends'
    (or etcd's, or the LMDB server's) CPU per operation and, for etagkv on
    etcd, etcd's too."""
    jsonl = None
    if args and args[0] == "--jsonl":
        jsonl = open(args[1], "a", encoding="utf-8")
        args = args[2:]
    if not args:
        sys.exit(__doc__)
    rows = [r for r in http_load(args[0]) if r["target"] in ETCD_TARGETS]
    cells = sorted({(r["scenario"], r["value_bytes"], r["conns"]) for r in rows},
                   key=lambda c: (c[2], c[0] != "rmw-1000", c[1]))
    print("| scenario | target | ops/s | p50 / p99 ms | ratio to etcd's own"
          " | server µs/op | etcd µs/op | runs |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for scen, size, conns in cells:
        base = per_run(rows, scen, size, conns, "etcd", "lean", "ok_per_s")
        for tgt in ETCD_TARGETS:
            ops = per_run(rows, scen, size, conns, tgt, "lean", "ok_per_s")
            if not ops:
                continue
            p50 = per_run(rows, scen, size, conns, tgt, "lean", "p50_ms")
            p99 = per_run(rows, scen, size, conns, tgt, "lean", "p99_ms")
            cpu = per_run(rows, scen, size, conns, tgt, "lean",
                          "server_cpu_us_per_op")
            back = per_run(rows, scen, size, conns, tgt, "lean",
                           "backend_cpu_us_per_op")
            r = ratio_med(ops, base) if tgt != "etcd" else None
            if tgt == "etcd":
                srv, etcd_cpu = None, medv(cpu)
            else:
                srv, etcd_cpu = medv(cpu), medv(back)
            name = ETCD_NAMES[tgt]
            if tgt == "etcd" and scen == "get":
                name = "etcd's own Range"
            print(f"| {scen} {size} B {conns}c | {name}"
                  f" | {fmt(medv(ops))} | {fmt(medv(p50), 2)} / {fmt(medv(p99), 2)}"
                  f" | {'**' + fx(r) + '**' if r is not None else '1 (baseline)'}"
                  f" | {fmt(srv, 0) if srv is not None else '—'}"
                  f" | {fmt(etcd_cpu, 0) if etcd_cpu is not None else '—'}"
                  f" | {len(ops)} |")
            if jsonl is not None:
                jsonl.write(json.dumps({
                    "bench": "http-etcd-median",
                    "scenario": f"http/{scen}/{size}B/{conns}c", "target": tgt,
                    "ops_per_s": medv(ops), "p50_ms": medv(p50),
                    "p99_ms": medv(p99), "ratio_to_etcd": r,
                    "server_cpu_us_per_op": srv,
                    "etcd_cpu_us_per_op": etcd_cpu, "runs": len(ops)}) + "\n")
    if jsonl is not None:
        jsonl.close()


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    if sys.argv[1] == "--http":
        http_main(sys.argv[2:])
        return
    if sys.argv[1] == "--etcd":
        etcd_main(sys.argv[2:])
        return
    runs = load(sys.argv[1:])
    embedded(runs)
    print()
    contended(runs)
    print()
    transfer(runs)
    print()
    idempotency(runs)


if __name__ == "__main__":
    main()
