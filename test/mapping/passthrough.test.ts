import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { IConnectPacket, IPublishPacket, ISubscribePacket } from 'mqtt-packet';
import { PASS_QUIRKS } from '../../src/core/contract.js';
import { silentLogger } from '../../src/log/logger.js';
import { loadRoute } from '../../src/routes/index.js';

const connect: IConnectPacket = {
  cmd: 'connect',
  clientId: 'dev-1',
  protocolVersion: 5,
  keepalive: 30,
  clean: true,
};

test('passthrough route forwards publishes, subscriptions and the CONNECT unchanged', async () => {
  const route = await loadRoute({ dir: 'mappings', route: 'passthrough', log: silentLogger });
  assert.equal(route.handler.passThrough, true);
  const d = await route.handler.openSession({ connect, listener: 'tcp' });
  assert.ok(d.accept);
  assert.equal(d.quirks, PASS_QUIRKS);
  assert.ok(d.north.mode === 'direct' && d.north.connect === connect);
  const payload = Buffer.from('23');
  const pub: IPublishPacket = {
    cmd: 'publish',
    topic: 'a/b',
    payload,
    qos: 1,
    retain: true,
    dup: false,
    properties: { contentType: 'text/plain' },
  };
  const up = await d.mapper.uplink(pub);
  assert.equal(up.north?.length, 1);
  assert.equal(up.north?.[0]?.payload, payload);
  assert.deepEqual(up.north?.[0], {
    topic: 'a/b',
    payload,
    qos: 1,
    retain: true,
    properties: { contentType: 'text/plain' },
  });
  const down = d.mapper.downlink({ ...pub, retain: false, qos: 0 });
  assert.deepEqual(down.south?.[0], {
    topic: 'a/b',
    payload,
    qos: 0,
    retain: false,
    properties: { contentType: 'text/plain' },
  });
  const sub: ISubscribePacket = {
    cmd: 'subscribe',
    messageId: 1,
    subscriptions: [
      { topic: 'x/#', qos: 1 },
      { topic: 'y', qos: 2, nl: true },
    ],
  };
  const plan = d.mapper.subscribe(sub);
  assert.deepEqual(plan.north, [
    { topic: 'x/#', qos: 1 },
    { topic: 'y', qos: 2, nl: true },
  ]);
  assert.deepEqual(plan.granted, [{ from: [0] }, { from: [1] }]);
  assert.deepEqual(d.mapper.unsubscribe({ cmd: 'unsubscribe', messageId: 2, unsubscriptions: ['x/#'] }), {
    north: ['x/#'],
  });
  route.close();
});
