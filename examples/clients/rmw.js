#!/usr/bin/env node
/*
 * rmw.js URL KEY N [MAX_ATTEMPTS] -- a read-modify-write client of
 * etagkv-server that handles 412 deterministically, with Node's built-in
 * fetch (Node 18 or later; no packages).
 *
 * Adds 1 to the decimal counter under /kv/KEY, N times.  Each increment
 * reads the counter once (GET: value and ETag; 404: 0, absent), then writes
 * the new value If-Match: that ETag (If-None-Match: * when absent) with
 * Prefer: return=representation.  A 412 is never retried blindly: the
 * client rebases on the state the 412 carries -- the current value and ETag
 * when the server applied the preference (Preference-Applied), or, for an
 * absent key, a problem+json body with "exists": false -- without another
 * read, waits a jittered, doubling backoff and tries again, at most
 * MAX_ATTEMPTS (default 10) times.  The last attempt asks for no
 * representation, so that its 412 is the diagnosis: the client reports it
 * and counts the increment as given up.  Any other status, or a transport
 * error, stops it (exit 1).
 *
 * Prints "ok=<increments made> failed=<increments given up>"; exits 0, or
 * 3 when an increment was given up.
 */
'use strict';

/* The counter's { value, etag }; etag null when it is absent. */
async function readState(url) {
  const r = await fetch(url);
  const text = await r.text();
  if (r.status === 404) return { value: 0, etag: null };
  if (r.status !== 200) throw new Error(`GET ${url}: ${r.status}`);
  return { value: parseInt(text, 10), etag: r.headers.get('ETag') };
}

/* { value, etag } from a 412 and its body: its representation, or its
 * problem+json for an absent key; re-read only when the server could not
 * include the representation (no memory to spare for it). */
async function rebase(url, r, text) {
  if (r.headers.has('Preference-Applied'))
    return { value: parseInt(text, 10), etag: r.headers.get('ETag') };
  if (JSON.parse(text).exists === false) return { value: 0, etag: null };
  return readState(url);
}

/* Full jitter: a random time in [0, 2^attempt * 5 ms), at most ~1.3 s, so
 * that clients that collided do not collide again in step. */
function backoff(attempt) {
  const ms = Math.random() * (5 << Math.min(attempt, 8));
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/* true when the increment was made, false when given up. */
async function increment(url, maxAttempts) {
  let state = await readState(url);
  for (let attempt = 1; attempt <= maxAttempts; attempt++) {
    const headers = {
      'Content-Type': 'text/plain',
      /* The last attempt's 412 is reported, not rebased on. */
      Prefer: attempt < maxAttempts ? 'return=representation' : 'return=minimal',
    };
    if (state.etag !== null) headers['If-Match'] = state.etag;
    else headers['If-None-Match'] = '*';
    const r = await fetch(url, { method: 'PUT', headers, body: String(state.value + 1) });
    const text = await r.text();
    if (r.status === 200 || r.status === 201) return true;
    if (r.status !== 412) throw new Error(`PUT ${url}: ${r.status} ${text}`);
    if (attempt === maxAttempts) {
      const problem = JSON.parse(text);
      const age = problem.superseded ? problem.superseded.age_ms : '?';
      console.error(`rmw.js: ${url}: gave up after ${maxAttempts} attempts ` +
                    `(412: ${problem.decided_by} false; sent ETag superseded ${age} ms before)`);
      return false;
    }
    state = await rebase(url, r, text);
    await backoff(attempt);
  }
  return false;
}

async function main(argv) {
  if (argv.length !== 3 && argv.length !== 4) {
    console.error('usage: rmw.js URL KEY N [MAX_ATTEMPTS]');
    return 2;
  }
  const url = `${argv[0]}/kv/${argv[1]}`;
  const n = parseInt(argv[2], 10);
  const maxAttempts = argv.length === 4 ? parseInt(argv[3], 10) : 10;
  let ok = 0;
  let failed = 0;
  try {
    for (let i = 0; i < n; i++) {
      if (await increment(url, maxAttempts)) ok++;
      else failed++;
    }
  } catch (e) {
    console.error(`rmw.js: ${e.message}`);
    return 1;
  }
  console.log(`ok=${ok} failed=${failed}`);
  return failed > 0 ? 3 : 0;
}

main(process.argv.slice(2)).then((rc) => { process.exitCode = rc; });
