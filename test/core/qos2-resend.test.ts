/**
 * QoS 2 resends through the pass-through proxy to a real mosquitto, as mosquitto's own suite
 * sends them (03-publish-c2b-disconnect-qos2.py, 03-publish-qos2-dup.py): the device side is a
 * raw connection (the exact packet sequence matters), the subscriber is MQTT.js on the broker.
 *
 * The proxy keeps one north connection per client under the same client id and keeps packet
 * ids, so the broker holds the QoS 2 state: a resend is passed on under the same id and the
 * broker's answer relayed. The broker recognises the duplicate, so it is delivered once.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Packet } from 'mqtt-packet';
import { passThroughRoute } from '../../src/routes/passthrough.js';
import { closeClient, connectClient, gather, type MqttClient, subscribe } from '../helpers/clients.js';
import { type MosquittoBroker, startMosquitto } from '../helpers/mosquitto.js';
import { startTestProxy, type TestProxy } from '../helpers/proxy.js';
import { connectPacket, type RawClient, rawConnect } from '../helpers/raw.js';

type Version = 3 | 4 | 5;

describe('QoS 2 resends through the pass-through proxy (mosquitto north)', () => {
  let broker: MosquittoBroker;
  let proxy: TestProxy;
  let watcher: MqttClient;
  const open = new Set<RawClient>();

  before(async () => {
    broker = await startMosquitto();
    proxy = await startTestProxy({ north: { url: broker.url } }, { route: passThroughRoute() });
    watcher = await connectClient(broker.url, { clientId: 'resend-watcher' });
    await subscribe(watcher, 'resend/#', { qos: 2 });
  });

  after(async () => {
    for (const c of open) c.destroy();
    await closeClient(watcher);
    await proxy.close(200);
    await broker.stop();
  });

  /** A raw device connection through the proxy, CONNACK read. */
  async function device(v: Version, clientId: string, clean: boolean): Promise<RawClient> {
    const c = await rawConnect(Number(new URL(proxy.url).port), v);
    open.add(c);
    c.send(
      connectPacket({
        protocolVersion: v,
        clientId,
        clean,
        ...(v === 5 ? { properties: { sessionExpiryInterval: 60 } } : {}),
      }),
      v,
    );
    const connack = await c.nextPacket();
    assert.equal(connack.cmd, 'connack');
    return c;
  }

  async function drop(c: RawClient): Promise<void> {
    c.destroy();
    open.delete(c);
    await c.closed(5000);
  }

  const publishPacket = (topic: string, dup: boolean) => ({
    cmd: 'publish',
    topic,
    payload: Buffer.from('resume-me'),
    qos: 2,
    messageId: 1,
    retain: false,
    dup,
  });

  const ack = (p: Packet): [string, number | undefined] => [
    p.cmd,
    'messageId' in p ? p.messageId : undefined,
  ];

  for (const v of [3, 4, 5] as const) {
    it(`MQTT ${v === 3 ? '3.1' : v === 4 ? '3.1.1' : '5'}: a QoS 2 flow resumed across reconnects (PUBLISH resent with DUP, then PUBREL resent${v === 3 ? ' with DUP' : ''}) gets its PUBREC and PUBCOMPs; delivered once`, async () => {
      const topic = `resend/resume/${v}`;
      const clientId = `resend-resume-${v}`;
      const seen = gather(watcher, topic, 2500);
      // Clean session 1 first: no state left from anything before.
      await drop(await device(v, clientId, true));

      let c = await device(v, clientId, false);
      c.send(publishPacket(topic, false), v);
      assert.deepEqual(ack(await c.nextPacket()), ['pubrec', 1]);
      // Gone before releasing: the broker's session keeps message 1 (received, not released).
      await drop(c);

      c = await device(v, clientId, false);
      c.send(publishPacket(topic, true), v);
      assert.deepEqual(ack(await c.nextPacket()), ['pubrec', 1]);
      c.send({ cmd: 'pubrel', messageId: 1 }, v);
      assert.deepEqual(ack(await c.nextPacket()), ['pubcomp', 1]);
      // Gone before seeing the PUBCOMP: the PUBREL is resent (MQTT 3.1 marks it DUP).
      await drop(c);

      c = await device(v, clientId, false);
      // mqtt-packet cannot write a PUBREL with DUP (its generator fails on the flag): these are
      // the 4 bytes a 3.1 client sends, as mosquitto's suite writes them.
      if (v === 3) c.write(Buffer.from([0x6a, 0x02, 0x00, 0x01]));
      else c.send({ cmd: 'pubrel', messageId: 1 }, v);
      assert.deepEqual(ack(await c.nextPacket()), ['pubcomp', 1], 'the resent PUBREL is completed');
      await drop(c);

      assert.deepEqual(
        (await seen).map((m) => m.payload.toString()),
        ['resume-me'],
        'delivered exactly once',
      );
    });
  }

  it('a QoS 2 PUBLISH resent after its PUBREC on the same connection is answered by the broker and delivered once', async () => {
    const topic = 'resend/same-connection';
    const seen = gather(watcher, topic, 2500);
    const c = await device(4, 'resend-same', true);
    c.send(publishPacket(topic, false), 4);
    assert.deepEqual(ack(await c.nextPacket()), ['pubrec', 1]);
    c.send(publishPacket(topic, true), 4);
    assert.deepEqual(ack(await c.nextPacket()), ['pubrec', 1]);
    c.send({ cmd: 'pubrel', messageId: 1 }, 4);
    assert.deepEqual(ack(await c.nextPacket()), ['pubcomp', 1]);
    await drop(c);
    assert.deepEqual(
      (await seen).map((m) => m.payload.toString()),
      ['resume-me'],
      'the duplicate is not delivered twice',
    );
  });

  for (const v of [4, 5] as const) {
    it(`MQTT ${v === 4 ? '3.1.1' : '5'}: a second resend of an unreleased QoS 2 PUBLISH reaches the broker, which closes the connection as a protocol error${v === 5 ? ' (DISCONNECT 0x82)' : ''}`, async () => {
      const topic = `resend/twice/${v}`;
      const c = await device(v, `resend-twice-${v}`, true);
      c.send(publishPacket(topic, true), v);
      assert.deepEqual(ack(await c.nextPacket()), ['pubrec', 1]);
      c.send(publishPacket(topic, true), v);
      assert.deepEqual(ack(await c.nextPacket()), ['pubrec', 1], 'the first resend is answered');
      c.send(publishPacket(topic, true), v);
      if (v === 5) {
        const d = await c.nextPacket();
        assert.equal(d.cmd, 'disconnect');
        assert.equal(d.cmd === 'disconnect' ? d.reasonCode : -1, 0x82);
      }
      await c.closed(5000);
      assert.equal(c.packets.length, v === 5 ? 4 : 3, 'no PUBREC for the second resend');
      open.delete(c);
    });
  }
});
