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

describe("gateway link: devices' acknowledgements while the link attaches its devices again", () => {
  let link: Link;
  let holdSlowAttach = false;
  const heldAttach: Array<() => void> = [];
  before(async () => {
    link = await startLink([], {
      authorizePublish: (_client, packet, cb) => {
        if (holdSlowAttach && packet.topic === '/devices/slow/attach') heldAttach.push(() => cb(null));
        else cb(null);
      },
    });
  });
  after(() => {
    for (const go of heldAttach.splice(0)) go();
    return link?.stop();
  });

  const withCommands = (id: string) =>
    plan(id, { subscriptions: [{ topic: `/devices/${id}/commands`, qos: 1 }] });
  const command = (id: string, payload: string): Promise<void> =>
    new Promise((resolve) =>
      link.broker.publish(
        {
          cmd: 'publish',
          topic: `/devices/${id}/commands`,
          payload: Buffer.from(payload),
          qos: 1,
          retain: false,
          dup: false,
        },
        () => resolve(),
      ),
    );
  const pubacksOn = (pair: Link['pair']): number => pair.sent.filter((p) => p.cmd === 'puback').length;

  it("passes a device's PUBACK north while another device's re-attach is still unanswered; never one for a lost connection's downlink", async () => {
    const fast = gatewayDevice(link.hub, 'fast', { plan: withCommands('fast') });
    const slow = gatewayDevice(link.hub, 'slow', { plan: withCommands('slow') });
    await fast.connect();
    await slow.connect();
    // A command on the first connection that the device does not acknowledge before the loss.
    await command('fast', 'old');
    await until(() => publishes(fast.packets).length === 1, 3000, 'the first command at the device');
    const old = publishes(fast.packets)[0] as IPublishPacket;
    holdSlowAttach = true;
    const opened = link.pairs.length;
    link.pair.brokerSide.destroy();
    await until(() => link.pairs.length > opened, 5000, 'the link reconnecting');
    const again = link.pair;
    await until(() => heldAttach.length > 0, 5000, "slow's re-attach at the broker (held)");
    await until(
      () =>
        again.sent.some(
          (p) => p.cmd === 'subscribe' && p.subscriptions[0]?.topic === '/devices/fast/commands',
        ),
      5000,
      'fast re-attached and re-subscribed',
    );
    // The answer to the first connection's command must not go out on this one.
    fast.send({ cmd: 'puback', messageId: old.messageId ?? 0 });
    await settle();
    assert.equal(pubacksOn(again), 0, "no PUBACK on the new connection for the lost one's downlink");
    // A command on the new connection while slow's attach is unanswered: its PUBACK goes north.
    await command('fast', 'new');
    await until(() => publishes(fast.packets).length === 2, 3000, 'the second command at the device');
    const cmd = publishes(fast.packets)[1] as IPublishPacket;
    assert.equal(cmd.payload.toString(), 'new');
    fast.send({ cmd: 'puback', messageId: cmd.messageId ?? 0 });
    await until(() => pubacksOn(again) === 1, 3000, "fast's PUBACK north during the restore");
    assert.equal(heldAttach.length, 1, "slow's attach still unanswered");
    holdSlowAttach = false;
    for (const go of heldAttach.splice(0)) go();
    fast.vanish();
    slow.vanish();
  });
});
