/**
 * The `conn` field of a session's log lines is the peer's ip:port: devices behind one NAT
 * share the address, the port tells them apart.
 */
import assert from 'node:assert/strict';
import type net from 'node:net';
import { test } from 'node:test';
import { peerName } from '../../src/log/peer-name.js';
import { captureLogs } from '../dialects/kit.js';
import { connectClient } from '../helpers/clients.js';
import { startTestProxy } from '../helpers/proxy.js';

test('peerName: ip:port, IPv6 in brackets, the address alone without a port', () => {
  assert.equal(peerName({ remoteAddress: '10.0.0.7', remotePort: 51234 }), '10.0.0.7:51234');
  assert.equal(peerName({ remoteAddress: '::1', remotePort: 1883 }), '[::1]:1883');
  assert.equal(peerName({ remoteAddress: '10.0.0.7' }), '10.0.0.7');
  assert.equal(peerName({}), undefined);
});

test('a session log line names its connection as 127.0.0.1:port (tcp and ws)', async () => {
  const logs = captureLogs();
  const proxy = await startTestProxy({}, { logger: logs.logger });
  try {
    for (const [listener, url] of [
      ['tcp', proxy.url],
      ['ws', proxy.wsUrl],
    ] as const) {
      const c = await connectClient(url);
      const localPort = (c.stream as net.Socket).localPort;
      await c.endAsync();
      const deadline = Date.now() + 5000;
      let hit: Record<string, unknown> | undefined;
      while (!hit && Date.now() < deadline) {
        hit = logs.lines().find((r) => r['listener'] === listener && typeof r['conn'] === 'string');
        if (!hit) await new Promise((r) => setTimeout(r, 20));
      }
      assert.ok(hit, `a ${listener} log line with conn`);
      assert.match(String(hit['conn']), /^127\.0\.0\.1:\d+$/);
      if (listener === 'tcp') assert.equal(hit['conn'], `127.0.0.1:${localPort}`);
    }
  } finally {
    await proxy.close(200);
  }
});
