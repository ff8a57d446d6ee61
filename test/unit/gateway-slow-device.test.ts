/**
 * A gateway device that stops reading its socket while the platform keeps sending it QoS 0
 * commands. The shared connection cannot be paused for one device (the others would stall),
 * so what that device cannot take must not pile up in the proxy without bound: its QoS 0
 * downlinks are dropped (counted) while its socket is full, as a broker does for a slow
 * subscriber, and the other devices are served meanwhile. Real Sessions on a link to aedes.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { IPublishPacket, Packet } from 'mqtt-packet';
import { type Device, gatewayDevice, type Link, plan, startLink } from './gateway-kit.js';
import { until } from './kit.js';

const COMMANDS = 200;
const PAYLOAD = Buffer.alloc(32 * 1024, 'x');

const publishes = (packets: Packet[]): IPublishPacket[] =>
  packets.filter((p): p is IPublishPacket => p.cmd === 'publish');

describe('gateway link: a device that does not read its downlinks', () => {
  let link: Link;
  let slow: Device;
  let fast: Device;
  const withCommands = (id: string) =>
    plan(id, { subscriptions: [{ topic: `/devices/${id}/commands/#`, qos: 0 }] });
  const command = (deviceId: string, payload: Buffer): Promise<void> =>
    new Promise((resolve) =>
      link.broker.publish(
        {
          cmd: 'publish',
          topic: `/devices/${deviceId}/commands`,
          payload,
          qos: 0,
          retain: false,
          dup: false,
        },
        () => resolve(),
      ),
    );

  before(async () => {
    link = await startLink([]);
    slow = gatewayDevice(link.hub, 'slow', { plan: withCommands('slow') });
    fast = gatewayDevice(link.hub, 'fast', { plan: withCommands('fast') });
    await slow.connect();
    await fast.connect();
  });
  after(() => {
    slow?.vanish();
    fast?.vanish();
    return link?.stop();
  });

  it('drops its QoS 0 downlinks while its socket is full, counted; the others are served', async () => {
    slow.pause();
    for (let i = 0; i < COMMANDS; i++) await command('slow', PAYLOAD);
    // Behind every command for the slow device on the shared connection: once the fast
    // device has this one, the link has routed them all.
    await command('fast', Buffer.from('marker'));
    await until(() => publishes(fast.packets).length === 1, 5000, "the fast device's command");
    const buffered = slow.session.south.stream.writableLength;
    assert.ok(
      buffered < 1024 * 1024,
      `what the slow device did not read is bounded (${buffered} bytes of ${COMMANDS * PAYLOAD.length} held)`,
    );
    const dropped = (await slow.metrics.messagesTotal.get()).values.find(
      (v) => v.labels.outcome === 'dropped' && v.labels.reason === 'south_slow',
    );
    assert.ok((dropped?.value ?? 0) > 0, 'the dropped commands are counted');
    slow.resume();
    await command('slow', Buffer.from('after'));
    await until(
      () => publishes(slow.packets).some((p) => p.payload.toString() === 'after'),
      5000,
      'a command once the device reads again',
    );
    assert.ok(publishes(slow.packets).length < COMMANDS + 1, 'not every command was kept');
    assert.equal(slow.isClosed(), false);
  });
});
