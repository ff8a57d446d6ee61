/**
 * A device that connects again while its previous session is still on the gateway link: the
 * new session takes the device's place, and the old one is closed (session_taken_over)
 * rather than left running with a member that no longer sends anything. Real Sessions on a
 * link to aedes.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { gatewayDevice, type Link, startLink } from './gateway-kit.js';
import { until } from './kit.js';

describe('gateway device taken over by a newer session', () => {
  let link: Link;
  before(async () => {
    link = await startLink([]);
  });
  after(() => link?.stop());

  it('closes the old session; the new one carries on, and the device stays attached', async () => {
    const old = gatewayDevice(link.hub, 'x');
    await old.connect();
    const fresh = gatewayDevice(link.hub, 'x');
    await fresh.connect();
    await until(() => old.isClosed(), 3000, 'the old session closed');
    assert.deepEqual(await old.reasons(), ['session_taken_over']);
    assert.equal(fresh.isClosed(), false);
    fresh.send({
      cmd: 'publish',
      topic: 't',
      payload: Buffer.from('1'),
      qos: 1,
      messageId: 9,
      retain: false,
      dup: false,
    });
    await until(() => fresh.packets.some((p) => p.cmd === 'puback'), 3000, "the new session's PUBACK");
    const controls = link.pair.sent
      .filter((p) => p.cmd === 'publish' && p.topic.startsWith('/devices/x/'))
      .map((p) => (p as { topic: string }).topic.split('/')[3]);
    assert.deepEqual(controls, ['attach', 'attach', 'events'], 'no detach for the replaced session');
    fresh.vanish();
  });
});
