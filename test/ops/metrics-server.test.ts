import assert from 'node:assert/strict';
import { request } from 'node:http';
import { test } from 'node:test';
import { createMetrics } from '../../src/metrics/metrics.js';
import { type Readiness, startMetricsServer } from '../../src/metrics/server.js';

async function get(
  port: number,
  path: string,
  method = 'GET',
): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

test('metrics server answers /metrics, /healthz, /readyz and rejects the rest', async () => {
  const m = createMetrics();
  m.connectionsTotal.labels('tcp', 'generic').inc(3);
  let state: Readiness = { ready: false, checks: { listeners: true, mappings: true, north: false } };
  const srv = await startMetricsServer({
    host: '127.0.0.1',
    port: 0,
    registry: m.registry,
    readiness: () => state,
  });
  try {
    assert.ok(srv.port > 0);
    const metrics = await get(srv.port, '/metrics');
    assert.equal(metrics.status, 200);
    assert.match(metrics.type, /text\/plain/);
    assert.match(metrics.body, /^mqtt_proxy_connections_total\{listener="tcp",dialect="generic"\} 3$/m);
    assert.match(metrics.body, /^mqtt_proxy_build_info\{version="[^"]+",node="v\d+/m);
    assert.match(metrics.body, /^mqtt_proxy_process_cpu_seconds_total /m);

    const health = await get(srv.port, '/healthz');
    assert.equal(health.status, 200);
    assert.deepEqual(JSON.parse(health.body), { status: 'ok' });

    const notReady = await get(srv.port, '/readyz');
    assert.equal(notReady.status, 503);
    assert.deepEqual(JSON.parse(notReady.body).checks, { listeners: true, mappings: true, north: false });

    state = { ready: true, checks: { listeners: true, mappings: true, north: true } };
    const ready = await get(srv.port, '/readyz?verbose=1');
    assert.equal(ready.status, 200);
    assert.equal(JSON.parse(ready.body).status, 'ready');

    const head = await get(srv.port, '/healthz', 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.body, '');

    assert.equal((await get(srv.port, '/nope')).status, 404);
    assert.equal((await get(srv.port, '/metrics', 'POST')).status, 405);
  } finally {
    await srv.close();
  }
});

test('a throwing readiness check answers 503, and the server keeps serving', async () => {
  const m = createMetrics();
  const srv = await startMetricsServer({
    host: '127.0.0.1',
    port: 0,
    registry: m.registry,
    readiness: () => {
      throw new Error('boom');
    },
  });
  try {
    const r = await get(srv.port, '/readyz');
    assert.equal(r.status, 503);
    assert.equal(JSON.parse(r.body).status, 'not ready');
    assert.equal((await get(srv.port, '/healthz')).status, 200);
  } finally {
    await srv.close();
  }
});

test('a port already taken rejects with the listen error', async () => {
  const m = createMetrics();
  const a = await startMetricsServer({
    host: '127.0.0.1',
    port: 0,
    registry: m.registry,
    readiness: () => ({ ready: true, checks: {} }),
  });
  try {
    await assert.rejects(
      startMetricsServer({
        host: '127.0.0.1',
        port: a.port,
        registry: m.registry,
        readiness: () => ({ ready: true, checks: {} }),
      }),
      /EADDRINUSE/,
    );
  } finally {
    await a.close();
  }
});

test('close() ends open keep-alive connections and is idempotent', async () => {
  const m = createMetrics();
  const srv = await startMetricsServer({
    host: '127.0.0.1',
    port: 0,
    registry: m.registry,
    readiness: () => ({ ready: true, checks: {} }),
  });
  const res = await fetch(`http://127.0.0.1:${srv.port}/healthz`, { headers: { connection: 'keep-alive' } });
  assert.equal(res.status, 200);
  await res.text();
  await Promise.all([srv.close(), srv.close()]);
  await assert.rejects(fetch(`http://127.0.0.1:${srv.port}/healthz`));
});

test('malformed HTTP affects only its own connection', async () => {
  const { connect } = await import('node:net');
  const m = createMetrics();
  const srv = await startMetricsServer({
    host: '127.0.0.1',
    port: 0,
    registry: m.registry,
    readiness: () => ({ ready: true, checks: {} }),
  });
  try {
    const answer = await new Promise<string>((resolve) => {
      const s = connect(srv.port, '127.0.0.1', () => s.write('\x00\x01 NOT HTTP AT ALL\r\n\r\n'));
      let data = '';
      s.setEncoding('utf8');
      s.on('data', (d: string) => {
        data += d;
      });
      s.on('close', () => resolve(data));
      s.on('error', () => resolve(data));
    });
    assert.doesNotMatch(answer, /200 OK/);
    assert.equal((await get(srv.port, '/healthz')).status, 200, 'still serving');
  } finally {
    await srv.close();
  }
});
