/**
 * A ClearBlade outage with a fleet of devices behind the proxy's gateway link retrying: each
 * refused device wrote a warning `gateway attach failed`, outside the log budget the other
 * once-per-connection lines keep (repeated-logs.test.ts): thousands of lines a second with ten
 * thousand devices. Now 100 per 10 s, then one line with the rest; the metric counts each.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  captureLogs,
  metricValue,
  rsaKey,
  scrape,
  startRouteProxy,
  tempDir,
  until,
  writeCredentials,
} from '../dialects/kit.js';
import { closeClient, tryConnect } from '../helpers/clients.js';
import { freePort } from '../helpers/ports.js';
import type { TestProxy } from '../helpers/proxy.js';

const DEVICES = 130;
const LIMIT = 100;
const tokenOf = (id: string): string => `token-${id}-0123456789abcdef`;

describe('log lines repeated by every device behind an unreachable ClearBlade gateway link', () => {
  let proxy: TestProxy;
  const tmp = tempDir();
  const { logger, lines } = captureLogs('info');
  const gwKey = rsaKey();
  const ids = Array.from({ length: DEVICES }, (_, i) => `d${i}`);

  before(async () => {
    const creds = writeCredentials(
      tmp.dir,
      ids.map((id) => ({ south: { deviceId: id, token: tokenOf(id) }, north: { privateKey: gwKey.pem } })),
    );
    proxy = await startRouteProxy('connector-to-clearblade', `mqtt://127.0.0.1:${await freePort()}`, creds, {
      logger,
    });
  });

  after(async () => {
    await proxy?.close(500);
    tmp.cleanup();
  });

  it(`${DEVICES} refused devices: ${LIMIT} lines, then one with the rest, every one counted`, async () => {
    for (const id of ids) {
      const r = await tryConnect(proxy.url, { clientId: id, username: id, password: tokenOf(id) });
      assert.equal(r.connack?.returnCode, 3, 'CONNACK 3: server unavailable');
      await closeClient(r.client);
    }
    const failed = () => lines().filter((l) => l['msg'] === 'gateway attach failed');
    await until(() => failed().length >= LIMIT, 5000);
    assert.equal(failed().length, LIMIT);
    const metrics = await scrape(proxy);
    assert.equal(
      metricValue(
        metrics,
        'mqtt_proxy_north_connect_failures_total',
        'route="connector-to-clearblade",reason="attach_failed"',
      ),
      DEVICES,
    );
    const summary = () =>
      lines().find(
        (l) =>
          String(l['msg']).startsWith('repeated log lines left out') && l['line'] === 'gateway attach failed',
      );
    await until(() => summary() !== undefined, 15_000);
    assert.equal(summary()?.['suppressed'], DEVICES - LIMIT);
  });
});
