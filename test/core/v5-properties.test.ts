/**
 * MQTT 5 through the proxy in pass-through to mosquitto: publish properties (user properties,
 * content type, response topic, correlation data, payload format), topic aliases from the
 * client, and reason codes chosen by mosquitto (PUBACK 0x10 "no matching subscribers",
 * SUBACK granted QoS) all survive the trip.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { IPubackPacket } from 'mqtt-packet';
import {
  closeAll,
  collect,
  connectClient,
  type MqttClient,
  nextMessage,
  publish,
  subscribe,
} from '../helpers/clients.js';
import { type MosquittoBroker, startMosquitto } from '../helpers/mosquitto.js';
import { startTestProxy, type TestProxy } from '../helpers/proxy.js';

describe('core: MQTT 5 properties and reason codes through the proxy', () => {
  let broker: MosquittoBroker;
  let proxy: TestProxy;
  const clients: MqttClient[] = [];

  before(async () => {
    broker = await startMosquitto({ extraConfig: 'max_topic_alias 10\nmax_qos 1' });
    proxy = await startTestProxy({ north: { url: broker.url } });
  });
  after(async () => {
    await closeAll(clients);
    await proxy?.close(500);
    await broker?.stop();
  });

  const open = async (): Promise<MqttClient> => {
    const c = await connectClient(proxy.url, { protocolVersion: 5 });
    clients.push(c);
    return c;
  };

  it('user properties, content type, response topic, correlation data and payload format arrive', async () => {
    const sub = await open();
    const pub = await open();
    await subscribe(sub, 'v5/props', { qos: 1 });
    const got = nextMessage(sub, 'v5/props');
    await publish(pub, 'v5/props', '{"t":21.5}', {
      qos: 1,
      properties: {
        userProperties: { site: 'north-hall', line: ['a', 'b'] },
        contentType: 'application/json',
        responseTopic: 'v5/reply/42',
        correlationData: Buffer.from([0xde, 0xad, 0xbe, 0xef]),
        payloadFormatIndicator: true,
      },
    });
    const p = (await got).packet.properties;
    assert.ok(p, 'properties present');
    assert.deepEqual({ ...p.userProperties }, { site: 'north-hall', line: ['a', 'b'] });
    assert.equal(p.contentType, 'application/json');
    assert.equal(p.responseTopic, 'v5/reply/42');
    assert.deepEqual(p.correlationData, Buffer.from([0xde, 0xad, 0xbe, 0xef]));
    assert.equal(p.payloadFormatIndicator, true);
  });

  it('request/response: the responder answers on the response topic with the correlation data', async () => {
    const requester = await open();
    const responder = await open();
    await subscribe(responder, 'v5/request', { qos: 1 });
    await subscribe(requester, 'v5/response/+', { qos: 1 });
    responder.on('message', (topic, payload, packet) => {
      if (topic !== 'v5/request' || !packet.properties?.responseTopic) return;
      responder.publish(packet.properties.responseTopic, Buffer.concat([payload, Buffer.from('-done')]), {
        qos: 1,
        properties: { correlationData: packet.properties.correlationData },
      });
    });
    const answer = nextMessage(requester, 'v5/response/+');
    await publish(requester, 'v5/request', 'job', {
      qos: 1,
      properties: { responseTopic: 'v5/response/r1', correlationData: Buffer.from('corr-1') },
    });
    const m = await answer;
    assert.equal(m.topic, 'v5/response/r1');
    assert.equal(m.payload.toString(), 'job-done');
    assert.deepEqual(m.packet.properties?.correlationData, Buffer.from('corr-1'));
  });

  it('topic aliases set by the client resolve to the full topic', async () => {
    const sub = await open();
    const pub = await open();
    await subscribe(sub, 'v5/alias/#', { qos: 1 });
    const got = collect(sub, 'v5/alias/#', 3, 5000);
    await publish(pub, 'v5/alias/long/topic/name', 'first', { qos: 1, properties: { topicAlias: 3 } });
    // Empty topic: the alias alone names it.
    await publish(pub, '', 'second', { qos: 1, properties: { topicAlias: 3 } });
    await publish(pub, '', 'third', { qos: 0, properties: { topicAlias: 3 } });
    assert.deepEqual(
      (await got).map((m) => [m.topic, m.payload.toString()]),
      [
        ['v5/alias/long/topic/name', 'first'],
        ['v5/alias/long/topic/name', 'second'],
        ['v5/alias/long/topic/name', 'third'],
      ],
    );
  });

  it('PUBACK reason code 0x10 (no matching subscribers) from mosquitto reaches the client', async () => {
    const pub = await open();
    const acks: IPubackPacket[] = [];
    pub.on('packetreceive', (p) => {
      if (p.cmd === 'puback') acks.push(p as IPubackPacket);
    });
    await publish(pub, 'v5/nobody/listens', 'x', { qos: 1 });
    // With a subscriber the same publish is acknowledged with success.
    const sub = await open();
    await subscribe(sub, 'v5/nobody/listens', { qos: 1 });
    await publish(pub, 'v5/nobody/listens', 'y', { qos: 1 });
    assert.deepEqual(
      acks.map((a) => a.reasonCode ?? 0),
      [0x10, 0],
    );
  });

  it('SUBACK carries mosquitto’s per-filter codes (max_qos 1 downgrades a QoS 2 request)', async () => {
    const c = await open();
    const granted = await c.subscribeAsync({ 'v5/sub/0': { qos: 0 }, 'v5/sub/2': { qos: 2 } });
    assert.deepEqual(
      granted.map((g) => [g.topic, g.qos]),
      [
        ['v5/sub/0', 0],
        ['v5/sub/2', 1],
      ],
    );
  });
});
