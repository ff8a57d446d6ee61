/**
 * The gateway link's flow control: when its one north connection stops taking writes, only
 * the devices that found it blocked are told when it drains, not every attached device; and
 * a device, or the whole link, at its limit of unacknowledged uplinks stops being read until
 * acknowledgements come. A real broker (aedes) on an in-memory stream whose delivery can be
 * held, or whose acknowledgements can be held.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { GatewayMember } from '../../src/upstream/gateway-member.js';
import { until } from '../emulators/aedes-server.js';
import { type Link, startLink } from './gateway-kit.js';

describe('gateway link flow control', () => {
  let link: Link;
  before(async () => {
    link = await startLink(['busy', 'idle-1', 'idle-2']);
  });
  after(() => link?.stop());

  it('tells the device that found the link blocked when it drains, and no other', async () => {
    const { members, drains, pair } = link;
    const busy = members.get('busy') as GatewayMember;
    assert.equal(busy.blocked, false);
    drains.clear();
    pair.hold();
    const payload = Buffer.alloc(1000, 1);
    let sent = 0;
    while (!busy.blocked && sent < 1000) {
      busy.send({
        cmd: 'publish',
        topic: '/devices/busy/events',
        payload,
        qos: 0,
        retain: false,
        dup: false,
      });
      sent++;
    }
    assert.ok(busy.blocked, `the link blocked after ${sent} publishes`);
    assert.ok(sent > 1 && sent < 1000);
    pair.release();
    await until(() => (drains.get('busy') ?? 0) > 0, 5000, 'the busy device told of the drain');
    await new Promise((r) => setImmediate(r));
    assert.equal(drains.get('busy'), 1);
    assert.equal(drains.get('idle-1') ?? 0, 0, 'an idle device is not woken');
    assert.equal(drains.get('idle-2') ?? 0, 0, 'an idle device is not woken');
    assert.equal(busy.blocked, false);
  });
});

describe('gateway link in-flight limits', () => {
  let link: Link;
  let held = false;
  let acks: Array<() => void> = [];
  before(async () => {
    link = await startLink(['a', 'b', 'c'], {
      // The PUBACK of an uplink waits for authorizePublish: holding it holds the acknowledgement.
      authorizePublish: (_client, packet, cb) => {
        if (held && packet.topic.endsWith('/events')) acks.push(() => cb(null));
        else cb(null);
      },
      limits: { device: 5, link: 8 },
    });
  });
  after(() => link?.stop());

  it("stops a device at its own limit and every device at the link's; acknowledgements let them go on", async () => {
    const { members, drains } = link;
    const [a, b, c] = ['a', 'b', 'c'].map((id) => members.get(id) as GatewayMember) as [
      GatewayMember,
      GatewayMember,
      GatewayMember,
    ];
    const send = (m: GatewayMember): void => {
      m.send({
        cmd: 'publish',
        topic: `/devices/${m.deviceId}/events`,
        payload: Buffer.from('1'),
        qos: 1,
        retain: false,
        dup: false,
        messageId: m.ids.alloc(),
      });
    };
    held = true;
    for (let i = 0; i < 5; i++) send(a);
    assert.equal(a.blocked, true, 'a device at its limit of 5');
    assert.equal(b.blocked, false, 'another device goes on');
    for (let i = 0; i < 3; i++) send(b);
    assert.equal(b.blocked, true, 'the link at its limit of 8');
    assert.equal(c.blocked, true, 'every device waits while the link is full');
    await until(() => acks.length === 8, 5000, 'the 8 uplinks at the broker');
    drains.clear();
    held = false;
    const release = acks;
    acks = [];
    for (const ack of release) ack();
    await until(() => ['a', 'b', 'c'].every((id) => (drains.get(id) ?? 0) > 0), 5000, 'every device told');
    assert.deepEqual([a.blocked, b.blocked, c.blocked], [false, false, false]);

    // Below the link's limit, an acknowledgement lets on only the device that waits for it.
    held = true;
    for (let i = 0; i < 5; i++) send(a);
    assert.equal(a.blocked, true);
    await until(() => acks.length === 5, 5000, 'the 5 uplinks at the broker');
    drains.clear();
    held = false;
    for (const ack of acks.splice(0)) ack();
    await until(() => (drains.get('a') ?? 0) > 0, 5000, 'a told');
    await new Promise((r) => setImmediate(r));
    assert.equal(drains.get('a'), 1);
    assert.equal((drains.get('b') ?? 0) + (drains.get('c') ?? 0), 0, 'the others were not waiting');
    assert.equal(a.blocked, false);
  });
});
