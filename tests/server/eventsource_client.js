// eventsource_client.js -- a real EventSource implementation (the npm
// "eventsource" package, WHATWG-compliant) reads etagkv-server's
// /changes stream: DESIGN §8's framing as a browser would parse it.
//
//   node eventsource_client.js PORT
//
// Writes three changes, expects them as "put", "put", "delete" events with
// the JSON data and lastEventId of each revision, then reconnects with the
// last id (as EventSource does after a dropped connection) and expects only
// what came after it.  Exits 0 on success, 1 with a message otherwise.
'use strict';
const m = require('eventsource');
const EventSource = m.EventSource || m;
const port = process.argv[2];
const base = `http://127.0.0.1:${port}`;

function fail(msg) {
  console.error(`eventsource_client: ${msg}`);
  process.exit(1);
}
setTimeout(() => fail('timed out'), 20000);

async function http(method, path, body) {
  const r = await fetch(base + path, {method, body});
  if (r.status >= 300) fail(`${method} ${path}: ${r.status}`);
}

function collect(url, want, init) {
  return new Promise((resolve) => {
    const es = new EventSource(url, init);
    const got = [];
    const on = (e) => {
      got.push({type: e.type, data: JSON.parse(e.data), id: e.lastEventId});
      if (got.length === want) {
        es.close();
        resolve(got);
      }
    };
    es.addEventListener('put', on);
    es.addEventListener('delete', on);
    es.onerror = () => {};
    es.onopen = () => resolve.opened && resolve.opened();
  });
}

(async () => {
  const first = collect(`${base}/changes?prefix=es/`, 3);
  await http('PUT', '/kv/es/a', 'one');
  await http('PUT', '/kv/other', 'x');
  await http('PUT', '/kv/es/b', 'two');
  await http('DELETE', '/kv/es/a');
  const got = await first;
  const types = got.map((e) => e.type).join(',');
  if (types !== 'put,put,delete') fail(`types ${types}`);
  if (got[0].data.key !== 'es/a' || got[1].data.key !== 'es/b')
    fail(`keys ${JSON.stringify(got)}`);
  for (const e of got)
    if (e.id !== String(e.data.revision)) fail(`id ${e.id} for ${e.data.revision}`);
  if (got[2].data.etag !== null) fail('a delete has a null etag');
  // Resume: Last-Event-ID wins over after=0.
  const again = await collect(`${base}/changes?prefix=es/&after=0`, 1,
                              {fetch: (u, i) => fetch(u, {...i, headers: {...i.headers, 'Last-Event-ID': got[1].id}})});
  if (again[0].data.revision !== got[2].data.revision)
    fail(`resumed at ${again[0].data.revision}, wanted ${got[2].data.revision}`);
  console.log('eventsource_client: ok');
  process.exit(0);
})().catch((e) => fail(String(e)));
