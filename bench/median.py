#!/usr/bin/env python3
"""median.py -- medians of several runs of the embedded benchmarks.

    bench/median.py RUN1.jsonl RUN2.jsonl RUN3.jsonl ...

Reads the JSON lines that bench_embedded, bench_contended, bench_transfer
and bench_idem
write (bench/run.sh collects them in bench-results.jsonl; keep one file per
run) and prints Markdown tables of the per-scenario medians.  Every
figure, the ratio included, is the median over the runs of that figure:
the ratio is the median of the per-run ratios, each taken within one run,
not a ratio of medians.
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


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
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
