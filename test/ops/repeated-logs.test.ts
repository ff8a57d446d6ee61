/**
 * A platform outage with a fleet retrying: each refused CONNECT used to write a warning
 * `north connection failed` and an info line `connection closed`, thousands of lines a second
 * with ten thousand devices. Now each (line, reason) is written 100 times per 10 s and one line
 * says how many more there were; the metrics still count every one.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { captureLogs, metricValue, scrape, until } from '../dialects/kit.js';
import { closeClient, tryConnect } from '../helpers/clients.js';
import { freePort } from '../helpers/ports.js';
import { startTestProxy, type TestProxy } from '../helpers/proxy.js';

const CONNECTS = 130;
const LIMIT = 100;

describe('log lines repeated by every refused device during a platform outage', () => {
  let proxy: TestProxy;
  const { logger, lines } = captureLogs('info');

  before(async () => {
    proxy = await startTestProxy({ north: { url: `mqtt://127.0.0.1:${await freePort()}` } }, { logger });
  });

  after(async () => {
    await proxy?.close(500);
  });

  it(`${CONNECTS} refused devices: ${LIMIT} lines of each kind, then one line with the rest, every one counted`, async () => {
    for (let i = 0; i < CONNECTS; i++) {
      const r = await tryConnect(proxy.url, { clientId: `dev-${i}` });
      assert.equal(r.connack?.returnCode, 3, 'CONNACK 3: server unavailable');
      await closeClient(r.client);
    }
    const failed = () => lines().filter((l) => l['msg'] === 'north connection failed');
    const closed = () =>
      lines().filter((l) => l['msg'] === 'connection closed' && l['reason'] === 'north_unreachable');
    await until(() => closed().length >= LIMIT, 5000);
    assert.equal(failed().length, LIMIT);
    assert.equal(closed().length, LIMIT);
    const metrics = await scrape(proxy);
    assert.equal(
      metricValue(
        metrics,
        'mqtt_proxy_north_connect_failures_total',
        'route="passthrough",reason="unreachable"',
      ),
      CONNECTS,
    );
    assert.equal(
      metricValue(metrics, 'mqtt_proxy_connection_closes_total', 'reason="north_unreachable"'),
      CONNECTS,
    );
    // The window (10 s) ends: one line per kind says how many were left out.
    const summaries = () => lines().filter((l) => String(l['msg']).startsWith('repeated log lines left out'));
    await until(() => summaries().length >= 2, 15_000);
    const byLine = new Map(summaries().map((l) => [l['line'], l]));
    assert.equal(byLine.get('north connection failed')?.['suppressed'], CONNECTS - LIMIT);
    assert.equal(byLine.get('north connection failed')?.['level'], 40);
    assert.equal(byLine.get('connection closed')?.['suppressed'], CONNECTS - LIMIT);
    assert.equal(byLine.get('connection closed')?.['level'], 30);
  });
});
