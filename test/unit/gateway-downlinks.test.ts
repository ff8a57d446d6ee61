/**
 * Downlinks on a gateway link: one that comes for a device before its session is online (a
 * stored config sent right behind the SUBACK of the attach's subscription) is held for it and
 * delivered once the session is online; one its device can no longer take is acknowledged
 * north, not left in the platform's window for the gateway connection. Real Sessions on a link
 * to aedes; the broker's writes reach the proxy in one chunk when close together, as one TCP
 * segment would.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { IPublishPacket, Packet } from 'mqtt-packet';
import { gatewayDevice, type Link, plan, settle, startLink } from './gateway-kit.js';
import { until } from './kit.js';

const publishes = (packets: Packet[]): IPublishPacket[] =>
  packets.filter((p): p is IPublishPacket => p.cmd === 'publish');
const pubacksNorth = (link: Link): number =>
  link.pairs.flatMap((p) => p.sent).filter((p) => p.cmd === 'puback').length;

describe('gateway link downlinks', () => {
  let link: Link;
  before(async () => {
    link = await startLink([], { coalesceMs: 10 });
    const store = (deviceId: string): Promise<void> =>
      new Promise((resolve) =>
        link.broker.publish(
          {
            cmd: 'publish',
            topic: `/devices/${deviceId}/config`,
            payload: Buffer.from(`{"for":"${deviceId}"}`),
            qos: 1,
            retain: true,
            dup: false,
          },
          () => resolve(),
        ),
      );
    await store('early');
    await store('gone');
  });
  after(() => link?.stop());

  const withConfig = (id: string) =>
    plan(id, { subscriptions: [{ topic: `/devices/${id}/config`, qos: 1 }] });

  it('delivers a downlink that came before the session was online, once it is; its PUBACK goes north', async () => {
    const dev = gatewayDevice(link.hub, 'early', { plan: withConfig('early') });
    await dev.connect();
    await until(() => publishes(dev.packets).length > 0, 3000, 'the stored config at the device');
    const [cfg] = publishes(dev.packets);
    assert.equal(cfg?.payload.toString(), '{"for":"early"}');
    assert.equal(cfg?.qos, 1);
    const before = pubacksNorth(link);
    dev.send({ cmd: 'puback', messageId: cfg?.messageId ?? 0 });
    await until(() => pubacksNorth(link) > before, 3000, 'the PUBACK north');
    dev.vanish();
  });

  it('acknowledges north a downlink held for a device that left before it was online', async () => {
    const dev = gatewayDevice(link.hub, 'gone', { plan: withConfig('gone') });
    const before = pubacksNorth(link);
    void dev.connect().catch(() => undefined);
    // Gone while its attach is under way: its config comes right behind the SUBACK.
    await until(
      () => link.pair.sent.some((p) => p.cmd === 'publish' && p.topic === '/devices/gone/attach'),
      3000,
      'the attach sent',
    );
    dev.vanish();
    await until(() => pubacksNorth(link) > before, 3000, 'the held config acknowledged north');
    await settle();
    assert.deepEqual(publishes(dev.packets), []);
  });
});
