import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { createMetrics, PREFIX } from '../../src/metrics/metrics.js';

const FORBIDDEN_LABELS = /device|client|topic|user|secret|password|token|ip|addr|id$/i;

test('metric names follow the conventions: one prefix, _total counters, _seconds/_bytes units, build_info', async () => {
  const m = createMetrics();
  const metrics = await m.registry.getMetricsAsJSON();
  assert.ok(metrics.length > 20);
  for (const metric of metrics) {
    assert.ok(metric.name.startsWith(PREFIX), `${metric.name} lacks the prefix`);
    const type = String(metric.type);
    if (type === 'counter') assert.match(metric.name, /_total$/, `${metric.name}: counters end in _total`);
    // prom-client's default Node metrics include gauges such as nodejs_active_handles_total.
    const ours = !/^mqtt_proxy_(nodejs|process)_/.test(metric.name);
    if (ours && type !== 'counter')
      assert.doesNotMatch(metric.name, /_total$/, `${metric.name}: only counters end in _total`);
    if (type === 'histogram')
      assert.match(metric.name, /_(seconds|bytes)$/, `${metric.name}: histogram unit`);
    if (/duration|latency|time/.test(metric.name) && type !== 'gauge') {
      assert.match(metric.name, /_seconds(_total)?$/, `${metric.name}: durations in seconds`);
    }
  }
  const names = new Set(metrics.map((x) => x.name));
  for (const n of [
    'build_info',
    'connections_open',
    'connections_total',
    'connection_closes_total',
    'auth_failures_total',
    'packets_total',
    'bytes_total',
    'messages_total',
    'unmapped_topics_total',
    'north_connect_duration_seconds',
    'north_connect_failures_total',
    'qos1_inflight_messages',
    'translate_duration_seconds',
    'qos1_ack_duration_seconds',
    'config_reloads_total',
    'jwt_signings_total',
    'process_cpu_seconds_total',
    'nodejs_eventloop_lag_seconds',
  ]) {
    assert.ok(names.has(PREFIX + n), `missing ${PREFIX}${n}`);
  }
});

test('labels are bounded: never a device id, client id, topic, address or secret', () => {
  const m = createMetrics();
  assert.deepEqual((m.messagesTotal as unknown as { labelNames: string[] }).labelNames, [
    'route',
    'direction',
    'rule',
    'outcome',
    'reason',
  ]);
  for (const [field, value] of Object.entries(m)) {
    if (field === 'registry' || field === 'hot') continue;
    const labelNames = (value as unknown as { labelNames?: string[] }).labelNames ?? [];
    for (const l of labelNames) {
      assert.doesNotMatch(l, FORBIDDEN_LABELS, `${field} has unbounded label ${l}`);
    }
  }
});

test('build_info carries the package version and the Node version with value 1', async () => {
  const m = createMetrics();
  const text = await m.registry.metrics();
  const pkg = (await import('../../package.json', { with: { type: 'json' } })).default as { version: string };
  assert.ok(text.includes(`mqtt_proxy_build_info{version="${pkg.version}",node="${process.version}"} 1`));
});

test('docs/operations.md documents every metric the proxy defines', () => {
  const doc = readFileSync(new URL('../../docs/operations.md', import.meta.url), 'utf8');
  const m = createMetrics();
  for (const [field, value] of Object.entries(m)) {
    if (field === 'registry' || field === 'hot') continue;
    const name = (value as unknown as { name: string }).name;
    assert.ok(doc.includes(`\`${name}\``), `${name} is not documented in docs/operations.md`);
  }
});

test('connections_open reads 0 on a fresh proxy, and per listener once a connection came and went', async () => {
  const { startTestProxy } = await import('../helpers/proxy.js');
  const { connectClient } = await import('../helpers/clients.js');
  const proxy = await startTestProxy();
  try {
    const scrape = async () => (await fetch(`${proxy.metricsUrl}/metrics`)).text();
    assert.match(await scrape(), /^mqtt_proxy_connections_open 0$/m);
    const c = await connectClient(proxy.url);
    await c.endAsync();
    const deadline = Date.now() + 5000;
    while (proxy.connectionCount() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const text = await scrape();
    assert.match(text, /^mqtt_proxy_connections_open\{listener="tcp",[^}]*\} 0$/m);
    assert.doesNotMatch(text, /^mqtt_proxy_connections_open 0$/m);
  } finally {
    await proxy.close(200);
  }
});
