/**
 * The series a session changes once per connect or close (open connections, connections
 * total, north connect duration) or once per message (QoS 1/2 in flight, acknowledgement
 * time, sampled translation time) are counted in plain numbers and handed to prom-client when
 * the registry is read: what a scrape shows must equal what prom-client's own calls show.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMetrics } from '../../src/metrics/metrics.js';
import { observeTranslate } from '../../src/session/accounting.js';
import { AckHooks, northConnectSeconds, openGauge, totalCounter } from '../../src/session/session-metrics.js';

type Values = Array<{ labels: Record<string, string | number>; value: number; metricName?: string }>;

async function values(m: { get(): Promise<{ values: Values }> }): Promise<Values> {
  return (await m.get()).values.map((v) => ({ labels: v.labels, value: v.value, metricName: v.metricName }));
}

// Inside, on and between the bucket bounds, above the last one, and zero.
const SAMPLES = [0, 0.0004, 0.001, 0.0011, 0.003, 0.01, 0.02, 0.3, 0.9999, 1, 4, 7.5, 10, 12, 30];

describe('unit: per-connect metric series', () => {
  it('north connect histogram: same buckets, sum and count as prom-client observe, over several scrapes', async () => {
    const hot = createMetrics();
    const plain = createMetrics();
    for (let round = 0; round < 3; round++) {
      for (const v of SAMPLES.slice(round)) {
        northConnectSeconds(hot, 'route-a').observe(v);
        plain.northConnectSeconds.labels('route-a').observe(v);
        if (v > 1) {
          northConnectSeconds(hot, 'route-b').observe(v / 3);
          plain.northConnectSeconds.labels('route-b').observe(v / 3);
        }
      }
      const got = await values(hot.northConnectSeconds);
      const want = await values(plain.northConnectSeconds);
      // Sums agree up to the order the same numbers were added in.
      const isSum = (v: Values[number]) => v.metricName?.endsWith('_sum');
      assert.deepEqual(
        got.filter((v) => !isSum(v)),
        want.filter((v) => !isSum(v)),
      );
      const sums = (vs: Values) => vs.filter(isSum).map((v) => [v.labels.route, v.value] as const);
      assert.equal(sums(got).length, 2);
      for (const [i, [route, value]] of sums(got).entries()) {
        assert.equal(route, sums(want)[i]?.[0]);
        assert.ok(Math.abs(value - (sums(want)[i]?.[1] ?? Number.NaN)) < 1e-9, `sum of ${route}`);
      }
    }
    const text = await hot.registry.metrics();
    assert.match(text, /mqtt_proxy_north_connect_duration_seconds_count\{route="route-a"\} 42/);
  });

  it('north connect histogram after a registry reset: counts start again', async () => {
    const hot = createMetrics();
    northConnectSeconds(hot, 'r').observe(0.002);
    await hot.northConnectSeconds.get();
    hot.registry.resetMetrics();
    northConnectSeconds(hot, 'r').observe(0.2);
    northConnectSeconds(hot, 'r').observe(0.02);
    const count = (await values(hot.northConnectSeconds)).find(
      (v) => v.metricName === 'mqtt_proxy_north_connect_duration_seconds_count',
    );
    assert.equal(count?.value, 2);
  });

  it('open connections and connections total add up with changes made through prom-client', async () => {
    const m = createMetrics();
    const g = openGauge(m, 'tcp', 'generic');
    g.inc();
    g.inc();
    g.inc();
    totalCounter(m, 'tcp', 'generic').inc();
    totalCounter(m, 'tcp', 'generic').inc();
    totalCounter(m, 'ws', 'generic').inc();
    // A close path that decrements through prom-client directly.
    m.connectionsOpen.labels('tcp', 'generic').dec();
    assert.deepEqual(await values(m.connectionsOpen), [
      { labels: { listener: 'tcp', dialect: 'generic' }, value: 2, metricName: undefined },
    ]);
    g.dec();
    g.dec();
    assert.equal((await values(m.connectionsOpen))[0]?.value, 0);
    const total = await values(m.connectionsTotal);
    assert.deepEqual(
      total.map((v) => [v.labels.listener, v.value]),
      [
        ['tcp', 2],
        ['ws', 1],
      ],
    );
    // Nothing pending is added twice.
    assert.deepEqual(await values(m.connectionsTotal), total);
  });

  it('per message: in-flight gauge, acknowledgement and translation histograms, over scrapes', async () => {
    const m = createMetrics();
    let settled = 0;
    const up = new AckHooks(m, 'route-a', 'uplink', () => settled++);
    const down = new AckHooks(m, 'route-a', 'downlink', () => settled++);
    const count = async (h: { get(): Promise<{ values: Values }> }, labels: Record<string, string>) =>
      (await values(h)).find(
        (v) =>
          v.metricName?.endsWith('_count') && Object.entries(labels).every(([k, x]) => v.labels[k] === x),
      )?.value;
    for (let i = 0; i < 5; i++) up.onStart();
    down.onStart();
    up.onSettled(Date.now() - 3); // about 3 ms
    up.onSettled(Date.now() - 2000); // about 2 s
    up.onSettled(-1); // not timed (a QoS 2 copy, say)
    assert.equal(settled, 3);
    const inflight = async () =>
      Object.fromEntries((await values(m.inflight)).map((v) => [v.labels.direction, v.value]));
    assert.deepEqual(await inflight(), { uplink: 2, downlink: 1 });
    assert.equal(await count(m.ackSeconds, { route: 'route-a', direction: 'uplink' }), 2);
    const le = (await values(m.ackSeconds)).filter(
      (v) => v.metricName?.endsWith('_bucket') && v.labels.direction === 'uplink',
    );
    assert.equal(le.find((v) => v.labels.le === 0.001)?.value, 0);
    assert.equal(le.find((v) => v.labels.le === 0.01)?.value, 1);
    assert.equal(le.find((v) => v.labels.le === 5)?.value, 2);
    // Changes after a scrape add to what it showed; prom-client's own calls add up with them.
    down.onSettled(Date.now());
    m.inflight.labels('uplink').inc(10);
    assert.deepEqual(await inflight(), { uplink: 12, downlink: 0 });
    assert.equal(await count(m.ackSeconds, { route: 'route-a', direction: 'downlink' }), 1);
    assert.equal(await count(m.ackSeconds, { route: 'route-a', direction: 'uplink' }), 2);
    observeTranslate(m, 'route-a', 'uplink', process.hrtime.bigint());
    observeTranslate(m, 'route-a', 'uplink', process.hrtime.bigint());
    observeTranslate(m, 'route-a', 'downlink', process.hrtime.bigint());
    assert.equal(await count(m.translateSeconds, { route: 'route-a', direction: 'uplink' }), 2);
    assert.equal(await count(m.translateSeconds, { route: 'route-a', direction: 'downlink' }), 1);
  });
});
