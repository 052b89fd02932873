#!/usr/bin/env python3
"""rmw.py URL KEY N [MAX_ATTEMPTS] -- a read-modify-write client of
etagkv-server that handles 412 deterministically, with requests (Debian:
python3-requests).

Adds 1 to the decimal counter under /kv/KEY, N times.  Each increment reads
the counter once (GET: value and ETag; 404: 0, absent), then writes the new
value If-Match: that ETag (If-None-Match: * when absent) with Prefer:
return=representation.  A 412 is never retried blindly: the client rebases
on the state the 412 carries -- the current value and ETag when the server
applied the preference (Preference-Applied), or, for an absent key, a
problem+json body with "exists": false -- without another read, waits a
jittered, doubling backoff and tries again, at most MAX_ATTEMPTS (default
10) times.  The last attempt asks for no representation, so that its 412 is
the diagnosis: the client reports it and counts the increment as given up.
Any other status, or a transport error, stops it (exit 1).

Prints "ok=<increments made> failed=<increments given up>"; exits 0, or 3
when an increment was given up.
"""
import random
import sys
import time

import requests


class Stop(Exception):
    """An answer a read-modify-write cannot go on from."""


def read_state(session, url):
    """(value, etag) of the counter; (0, None) when it is absent."""
    r = session.get(url, timeout=30)
    if r.status_code == 404:
        return 0, None
    if r.status_code != 200:
        raise Stop(f"GET {url}: {r.status_code}")
    return int(r.text), r.headers["ETag"]


def rebase(session, url, r):
    """(value, etag) from a 412: its representation, or its problem+json
    for an absent key; re-read only when the server could not include the
    representation (no memory to spare for it)."""
    if "Preference-Applied" in r.headers:
        return int(r.text), r.headers["ETag"]
    if not r.json().get("exists", True):
        return 0, None
    return read_state(session, url)


def backoff(attempt):
    """Full jitter: a random time in [0, 2^attempt * 5 ms), at most ~1.3 s,
    so that clients that collided do not collide again in step."""
    time.sleep(random.uniform(0, (5 << min(attempt, 8)) / 1000.0))


def increment(session, url, max_attempts):
    """True when the increment was made, False when given up."""
    value, etag = read_state(session, url)
    for attempt in range(1, max_attempts + 1):
        headers = {
            "Content-Type": "text/plain",
            # The last attempt's 412 is reported, not rebased on.
            "Prefer": "return=representation" if attempt < max_attempts
            else "return=minimal",
        }
        if etag is not None:
            headers["If-Match"] = etag
        else:
            headers["If-None-Match"] = "*"
        r = session.put(url, data=str(value + 1), headers=headers, timeout=30)
        if r.status_code in (200, 201):
            return True
        if r.status_code != 412:
            raise Stop(f"PUT {url}: {r.status_code} {r.text}")
        if attempt == max_attempts:
            problem = r.json()
            age = (problem.get("superseded") or {}).get("age_ms", "?")
            print(f"rmw.py: {url}: gave up after {max_attempts} attempts "
                  f"(412: {problem.get('decided_by')} false; sent ETag "
                  f"superseded {age} ms before)", file=sys.stderr)
            return False
        value, etag = rebase(session, url, r)
        backoff(attempt)
    return False


def main(argv):
    if len(argv) not in (4, 5):
        print("usage: rmw.py URL KEY N [MAX_ATTEMPTS]", file=sys.stderr)
        return 2
    url = f"{argv[1]}/kv/{argv[2]}"
    n = int(argv[3])
    max_attempts = int(argv[4]) if len(argv) == 5 else 10
    ok = failed = 0
    with requests.Session() as session:
        try:
            for _ in range(n):
                if increment(session, url, max_attempts):
                    ok += 1
                else:
                    failed += 1
        except (Stop, requests.RequestException, ValueError) as e:
            print(f"rmw.py: {e}", file=sys.stderr)
            return 1
    print(f"ok={ok} failed={failed}")
    return 3 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
