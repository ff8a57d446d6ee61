/**
 * The gateway link's packet ids: one space for every device on the shared connection. A
 * device that leaves while one of its uplinks is unanswered north must not let that id go to
 * another device's uplink: the platform's late PUBACK would acknowledge the other message
 * before the platform has it. Real Sessions (their relays allocate the ids) on a link to
 * aedes, whose PUBACKs are held by holding authorizePublish.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Packet } from 'mqtt-packet';
import { gatewayDevice, type Link, settle, startLink } from './gateway-kit.js';
import { until } from './kit.js';

const pubacks = (packets: Packet[]): number[] =>
  packets.filter((p) => p.cmd === 'puback').map((p) => (p as { messageId: number }).messageId);

describe('gateway link packet ids', () => {
  let link: Link;
  /** Uplinks at the broker whose PUBACK is held, by payload. */
  const held = new Map<string, () => void>();
  const stored: string[] = [];
  before(async () => {
    link = await startLink([], {
      authorizePublish: (_client, packet, cb) => {
        if (packet.topic.endsWith('/events')) held.set(packet.payload.toString(), () => cb(null));
        else cb(null);
      },
    });
    link.broker.on('publish', (p) => {
      if (p.topic.endsWith('/events')) stored.push(p.payload.toString());
    });
  });
  after(() => link?.stop());

  const uplink = (payload: string) =>
    ({
      cmd: 'publish',
      topic: 't',
      payload: Buffer.from(payload),
      qos: 1,
      messageId: 1,
      retain: false,
      dup: false,
    }) as const;

  it("keeps a departed device's unanswered id: its late PUBACK does not acknowledge another device's uplink", async () => {
    const a = gatewayDevice(link.hub, 'a');
    const b = gatewayDevice(link.hub, 'b');
    await a.connect();
    await b.connect();
    a.send(uplink('A1'));
    await until(() => held.has('A1'), 3000, "a's uplink at the broker");
    a.vanish();
    await until(() => a.isClosed(), 3000, "a's session closed");
    await settle();
    // b's uplink under the same device-side id, while a's is still unanswered north.
    b.send(uplink('B1'));
    await until(() => held.has('B1'), 3000, "b's uplink at the broker");
    held.get('A1')?.();
    await until(() => stored.includes('A1'), 3000, "a's uplink stored");
    await settle(100);
    assert.deepEqual(
      pubacks(b.packets),
      [],
      "a's PUBACK must not reach b: the broker does not have b's uplink",
    );
    held.get('B1')?.();
    await until(() => pubacks(b.packets).length > 0, 3000, "b's PUBACK");
    assert.deepEqual(pubacks(b.packets), [1]);
    assert.ok(stored.includes('B1'));
    b.vanish();
  });

  it('the same when the device was replaced by a new session of the same device', async () => {
    const c1 = gatewayDevice(link.hub, 'c');
    const d = gatewayDevice(link.hub, 'd');
    await c1.connect();
    await d.connect();
    c1.send(uplink('C1'));
    await until(() => held.has('C1'), 3000, "c's uplink at the broker");
    // c connects again (a new session for the same device), and the old one goes.
    const c2 = gatewayDevice(link.hub, 'c');
    await c2.connect();
    c1.vanish();
    await until(() => c1.isClosed(), 3000, 'the old session of c closed');
    await settle();
    d.send(uplink('D1'));
    await until(() => held.has('D1'), 3000, "d's uplink at the broker");
    held.get('C1')?.();
    await until(() => stored.includes('C1'), 3000, "c's first uplink stored");
    await settle(100);
    assert.deepEqual(pubacks(d.packets), [], "c's PUBACK must not reach d");
    assert.deepEqual(pubacks(c2.packets), [], 'nor the new session of c, which sent nothing');
    held.get('D1')?.();
    await until(() => pubacks(d.packets).length > 0, 3000, "d's PUBACK");
    assert.deepEqual(pubacks(d.packets), [1]);
    c2.vanish();
    d.vanish();
  });
});
