/**
 * The Relay end to end with a real broker refusing a QoS 2 message: an MQTT 5 client through
 * the pass-through proxy to mosquitto with an ACL, which answers PUBREC 0x87 (not authorized).
 *
 * SPEC: MQTT 5 [2.2.1, MQTT-4.3.3]: a PUBREC with a reason code >= 0x80 ends the QoS 2
 * flow; the sender sends no PUBREL and may reuse the packet identifier at once. The relay
 * must settle the refused message at once, or the next QoS 2 PUBLISH reusing that id would
 * be taken for a duplicate and never forwarded (silently lost).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { passThroughRoute } from '../../src/routes/passthrough.js';
import { closeClient, connectClient, gather, type MqttClient, subscribe } from '../helpers/clients.js';
import { type MosquittoBroker, startMosquitto } from '../helpers/mosquitto.js';
import { startTestProxy, type TestProxy } from '../helpers/proxy.js';
import { connectPacket, type RawClient, rawConnect } from '../helpers/raw.js';

describe('Relay with a broker refusing QoS 2 (MQTT 5 client)', () => {
  let broker: MosquittoBroker;
  let proxy: TestProxy;
  let watcher: MqttClient;
  let raw: RawClient | undefined;

  before(async () => {
    broker = await startMosquitto({ acl: 'topic readwrite ok/#\n' });
    proxy = await startTestProxy({ north: { url: broker.url } }, { route: passThroughRoute() });
    watcher = await connectClient(broker.url, { clientId: 'qos2-watcher', protocolVersion: 5 });
    await subscribe(watcher, 'ok/#', { qos: 2 });
  });

  after(async () => {
    raw?.destroy();
    await closeClient(watcher);
    await proxy.close(200);
    await broker.stop();
  });

  it('control: an allowed QoS 2 message through the proxy reaches the broker', async () => {
    const c = await rawConnect(Number(new URL(proxy.url).port), 5);
    try {
      c.send(connectPacket({ protocolVersion: 5, clientId: 'qos2-control' }), 5);
      await c.nextPacket();
      const seen = gather(watcher, 'ok/#', 1500);
      c.send(
        {
          cmd: 'publish',
          topic: 'ok/control',
          payload: Buffer.from('c'),
          qos: 2,
          messageId: 9,
          retain: false,
          dup: false,
        },
        5,
      );
      const rec = await c.nextPacket();
      assert.ok(rec.cmd === 'pubrec' && (rec.reasonCode ?? 0) === 0);
      c.send({ cmd: 'pubrel', messageId: 9, reasonCode: 0 }, 5);
      assert.equal((await c.nextPacket()).cmd, 'pubcomp');
      assert.deepEqual(
        (await seen).map((m) => m.topic),
        ['ok/control'],
      );
    } finally {
      c.destroy();
    }
  });

  it('SPEC: after PUBREC 0x87 the packet id is free: reusing it is a new message, delivered', async () => {
    raw = await rawConnect(Number(new URL(proxy.url).port), 5);
    raw.send(connectPacket({ protocolVersion: 5, clientId: 'qos2-reuse' }), 5);
    const connack = await raw.nextPacket();
    assert.equal(connack.cmd === 'connack' ? connack.reasonCode : -1, 0);

    const pub = (topic: string) =>
      raw!.send(
        {
          cmd: 'publish',
          topic,
          payload: Buffer.from(topic),
          qos: 2,
          messageId: 1,
          retain: false,
          dup: false,
        },
        5,
      );
    pub('deny/x');
    const refused = await raw.nextPacket();
    assert.ok(
      refused.cmd === 'pubrec' && refused.reasonCode === 0x87,
      'the broker refusal reaches the client',
    );

    // The flow of id 1 is over (no PUBREL after a failure): id 1 now carries a new message.
    const seen = gather(watcher, 'ok/#', 1500);
    pub('ok/x');
    const rec = await raw.nextPacket();
    assert.equal(rec.cmd, 'pubrec');
    raw.send({ cmd: 'pubrel', messageId: 1, reasonCode: 0 }, 5);
    const comp = await raw.nextPacket();
    assert.equal(comp.cmd, 'pubcomp');
    const got = await seen;
    assert.deepEqual(
      got.map((m) => m.topic),
      ['ok/x'],
      'the second message reached the broker',
    );
  });
});
