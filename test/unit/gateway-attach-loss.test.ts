/**
 * A device whose attach is under way when the link's connection goes (the platform cuts it,
 * or the link renews its JWT): the link comes back at once, and the device is attached on the
 * new connection rather than refused (CONNACK 3) for a loss it had no part in. Real aedes on
 * the gated pairs of gateway-kit.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Client, PublishPacket } from 'aedes';
import { type Link, plan, quietEvents, startLink } from './gateway-kit.js';
import { until } from './kit.js';

/** Holds the first attach of `deviceId` (its PUBACK never comes on that connection). */
function holdFirstAttach(deviceId: string) {
  const state = { armed: false, held: 0 };
  const authorizePublish = (_c: Client | null, p: PublishPacket, cb: (err?: Error | null) => void) => {
    if (state.armed && p.topic === `/devices/${deviceId}/attach`) {
      state.armed = false;
      state.held++;
      return; // never answered: its connection goes first
    }
    cb(null);
  };
  return { state, authorizePublish };
}

describe('gateway link: the connection lost while a device attaches', () => {
  let link: Link;
  const gate = holdFirstAttach('b');
  before(async () => {
    link = await startLink(['a'], { authorizePublish: gate.authorizePublish, timeoutMs: 5000 });
  });
  after(() => link?.stop());

  it('attaches the device on the next connection', async () => {
    gate.state.armed = true;
    const attached = link.hub.attach(plan('b'), quietEvents('b'));
    await until(() => gate.state.held === 1, 3000, "b's attach at the platform");
    link.pair.brokerSide.destroy();
    const b = await attached;
    assert.equal(link.pairs.length, 2, 'attached on the second connection');
    const attaches = link.pairs[1]?.sent.filter(
      (p) => p.cmd === 'publish' && p.topic === '/devices/b/attach',
    );
    assert.ok(attaches && attaches.length >= 1, 'b attached on the new connection');
    await until(() => !b.blocked && !link.members.get('a')?.blocked, 8000, 'the link restored');
  });
});

describe('gateway link: JWT renewal while a device attaches', () => {
  let link: Link;
  const gate = holdFirstAttach('r');
  before(async () => {
    link = await startLink([], { authorizePublish: gate.authorizePublish, timeoutMs: 5000 });
  });
  after(() => link?.stop());

  it('attaches the device on the renewed connection', async () => {
    await link.hub.attach({ ...plan('q'), renewAfterMs: 600 }, quietEvents('q'));
    gate.state.armed = true;
    const attached = link.hub.attach(plan('r'), quietEvents('r'));
    await until(() => gate.state.held === 1, 3000, "r's attach at the platform");
    await attached;
    assert.ok(link.pairs.length >= 2, 'attached after the renewal, on a new connection');
  });
});
