#!/usr/bin/env python3
"""flushes.py -- count a server's flushes to stable storage in an strace log.

    bench/flushes.py SERVER STRACE_LOG ACKED_WRITES [TRANSACTIONS] [DSYNC_FD...]

STRACE_LOG comes from `strace -f -qq -e trace=SYSCALLS -o STRACE_LOG` over a
whole run of the server (bench/run_http.sh, SYSCALLS below).  A flush is a
call that returns only once data is on stable storage:

  fsync, fdatasync, syncfs, sync, sync_file_range (with SYNC_FILE_RANGE_WAIT_AFTER),
  msync with MS_SYNC, and any pwrite/pwritev/write/writev on a descriptor
  opened with O_DSYNC or O_SYNC (LMDB writes its meta page that way).

DSYNC_FD: descriptors known to carry O_DSYNC (read from /proc/PID/fdinfo
by the caller: they were opened before the trace could see them, or by a
call strace shows split); opens seen in the log are tracked too.  Prints
one JSON line: the server, the acknowledged writes and transactions given,
the flush count and the count per system call.
"""
import json
import re
import sys

SYSCALLS = ("openat,fsync,fdatasync,syncfs,sync,sync_file_range,msync,"
            "pwrite64,pwritev,pwritev2")

CALL = re.compile(r"^(?:\[pid\s+)?(\d+)\]?\s+([a-z_0-9]+)\((.*)")
RESULT = re.compile(r"=\s+(-?\d+)")


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    server, log, acked = sys.argv[1], sys.argv[2], int(sys.argv[3])
    txns = int(sys.argv[4]) if len(sys.argv) > 4 and sys.argv[4] != "-" else None
    dsync = {int(fd) for fd in sys.argv[5:]}
    calls = {}
    pending_open = {}  # pid -> O_DSYNC flag of an unfinished openat
    with open(log, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = CALL.match(line)
            if m is None:
                if "openat resumed>" in line:
                    pid = line.split()[0]
                    r = RESULT.search(line)
                    if pending_open.pop(pid, False) and r and int(r.group(1)) >= 0:
                        dsync.add(int(r.group(1)))
                continue
            pid, name, rest = m.groups()
            if name == "openat":
                is_dsync = "O_DSYNC" in rest or "O_SYNC" in rest
                if "<unfinished" in rest:
                    pending_open[pid] = is_dsync
                else:
                    r = RESULT.search(rest)
                    if is_dsync and r and int(r.group(1)) >= 0:
                        dsync.add(int(r.group(1)))
                continue
            flush = False
            if name in ("fsync", "fdatasync", "syncfs", "sync"):
                flush = True
            elif name == "sync_file_range":
                flush = "SYNC_FILE_RANGE_WAIT_AFTER" in rest
            elif name == "msync":
                flush = "MS_SYNC" in rest
            elif name in ("pwrite64", "pwritev", "pwritev2", "write", "writev"):
                fd = re.match(r"\s*(\d+)", rest)
                flush = fd is not None and int(fd.group(1)) in dsync
                if flush:
                    name += " (O_DSYNC)"
            if flush:
                calls[name] = calls.get(name, 0) + 1
    print(json.dumps({"bench": "http-flushes", "server": server,
                      "acked_writes": acked, "transactions": txns,
                      "flushes": sum(calls.values()), "calls": calls}))


if __name__ == "__main__":
    main()
