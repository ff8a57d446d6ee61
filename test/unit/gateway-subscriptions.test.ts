/**
 * A gateway device's SUBSCRIBE or UNSUBSCRIBE in flight when the shared connection is lost:
 * the device's session stays (the link reconnects), so it must still be answered: SUBACK
 * with its filters failed (and they are not made on the next connection), UNSUBACK (the
 * filters are gone). Real Sessions on a link to aedes; the proxy's writes are held so the
 * request is still unanswered when the connection goes.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ISubackPacket, ISubscribePacket, Packet } from 'mqtt-packet';
import { eventsMapper, gatewayDevice, type Link, startLink } from './gateway-kit.js';
import { until } from './kit.js';

const DEVICE = 's1';
const north = (topic: string): string => `/devices/${DEVICE}/${topic}`;

const mapper = eventsMapper(DEVICE, {
  subscribe: (p) => ({
    north: p.subscriptions.map((s) => ({ topic: north(s.topic), qos: s.qos })),
    granted: p.subscriptions.map((_, i) => ({ from: [i] })),
  }),
  unsubscribe: (p) => ({ north: p.unsubscriptions.map(north) }),
});

const of = <C extends Packet['cmd']>(packets: Packet[], cmd: C) =>
  packets.filter((p) => p.cmd === cmd) as Array<Extract<Packet, { cmd: C }>>;

describe('gateway device subscriptions across a lost connection', () => {
  let link: Link;
  before(async () => {
    link = await startLink([]);
  });
  after(() => link?.stop());

  /** Holds the proxy's writes, runs `send`, waits for `cmd` to be written, then cuts the connection. */
  const cutWhile = async (send: () => void, cmd: 'subscribe' | 'unsubscribe'): Promise<void> => {
    const pair = link.pair;
    pair.hold();
    send();
    // Written toward the broker (held there): the link's client waits for the answer.
    await new Promise((r) => setTimeout(r, 50));
    assert.ok(!pair.sent.some((p) => p.cmd === cmd), 'the request never reached the broker');
    pair.brokerSide.destroy();
  };

  it('answers a SUBSCRIBE cut by the connection loss with 0x80, and does not make it on the next connection', async () => {
    const dev = gatewayDevice(link.hub, DEVICE, { mapper });
    await dev.connect();
    const opened = link.pairs.length;
    await cutWhile(
      () =>
        dev.send({
          cmd: 'subscribe',
          messageId: 7,
          subscriptions: [{ topic: 'cmd', qos: 1 }],
        } as ISubscribePacket),
      'subscribe',
    );
    await until(() => of(dev.packets, 'suback').length > 0, 3000, 'the SUBACK');
    const [suback] = of(dev.packets, 'suback') as ISubackPacket[];
    assert.equal(suback?.messageId, 7);
    assert.deepEqual(suback?.granted, [0x80]);
    assert.equal(dev.isClosed(), false, 'the device stays connected');
    // The link reconnects and attaches the device again, without the failed filter.
    await until(() => link.pairs.length > opened, 5000, 'the link reconnecting');
    const again = link.pair;
    await until(
      () => again.sent.some((p) => p.cmd === 'publish' && p.topic === `/devices/${DEVICE}/attach`),
      5000,
      're-attached',
    );
    await new Promise((r) => setTimeout(r, 100));
    const resubscribed = of(again.sent, 'subscribe').flatMap((p) => p.subscriptions.map((s) => s.topic));
    assert.ok(!resubscribed.includes(north('cmd')), 'the refused filter is not made again');
  });

  it('answers an UNSUBSCRIBE cut by the connection loss', async () => {
    const dev = gatewayDevice(link.hub, 'u1', {
      mapper: eventsMapper('u1', {
        subscribe: (p) => ({
          north: p.subscriptions.map((s) => ({ topic: `/devices/u1/${s.topic}`, qos: s.qos })),
          granted: p.subscriptions.map((_, i) => ({ from: [i] })),
        }),
        unsubscribe: (p) => ({ north: p.unsubscriptions.map((t) => `/devices/u1/${t}`) }),
      }),
    });
    await dev.connect();
    dev.send({
      cmd: 'subscribe',
      messageId: 3,
      subscriptions: [{ topic: 'cmd', qos: 1 }],
    } as ISubscribePacket);
    await until(() => of(dev.packets, 'suback').length > 0, 3000, 'the SUBACK');
    assert.deepEqual(of(dev.packets, 'suback')[0]?.granted, [1]);
    const opened = link.pairs.length;
    await cutWhile(
      () => dev.send({ cmd: 'unsubscribe', messageId: 4, unsubscriptions: ['cmd'] }),
      'unsubscribe',
    );
    await until(() => of(dev.packets, 'unsuback').length > 0, 3000, 'the UNSUBACK');
    assert.equal(of(dev.packets, 'unsuback')[0]?.messageId, 4);
    assert.equal(dev.isClosed(), false);
    await until(() => link.pairs.length > opened, 5000, 'the link reconnecting');
    const again = link.pair;
    await until(
      () => again.sent.some((p) => p.cmd === 'publish' && p.topic === '/devices/u1/attach'),
      5000,
      're-attached',
    );
    await new Promise((r) => setTimeout(r, 100));
    const resubscribed = of(again.sent, 'subscribe').flatMap((p) => p.subscriptions.map((s) => s.topic));
    assert.ok(!resubscribed.includes('/devices/u1/cmd'), 'the unsubscribed filter is not made again');
  });
});
