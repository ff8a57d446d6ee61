/**
 * The gateway link's restore: one at a time. A connection lost while a restore waits for a
 * re-attach makes that attempt fail and retry (not a second restore beside it, whose failure
 * would end the healthy connection the other made); a DISCONNECT followed by the close of the
 * same connection is one loss, so every device is attached again once.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import mqttPacket from 'mqtt-packet';
import { type Link, plan, quietEvents, settle, startLink } from './gateway-kit.js';
import { until } from './kit.js';

const TIMEOUT_MS = 1500;

describe('gateway link restore: a connection lost while re-attaching', () => {
  let link: Link;
  let holdAttach = false;
  const held: Array<() => void> = [];
  before(async () => {
    link = await startLink(['a', 'b'], {
      timeoutMs: TIMEOUT_MS,
      authorizePublish: (_client, packet, cb) => {
        if (holdAttach && packet.topic === '/devices/a/attach') {
          holdAttach = false;
          held.push(() => cb(null));
        } else cb(null);
      },
    });
  });
  after(() => {
    for (const go of held.splice(0)) go();
    return link?.stop();
  });

  it('retries in the one restore under way, and never ends the connection it made', async () => {
    const a = link.members.get('a');
    assert.ok(a);
    holdAttach = true;
    link.pairs[0]?.brokerSide.destroy();
    await until(() => held.length === 1, 5000, "a's re-attach on the second connection (held)");
    assert.equal(link.pairs.length, 2);
    link.pairs[1]?.brokerSide.destroy();
    await until(() => link.pairs.length === 3 && !a.blocked, 8000, 'the link restored on a third connection');
    // Past the PUBACK timeout of the re-attach cut with the second connection: nothing more.
    await settle(TIMEOUT_MS + 700);
    assert.equal(link.pairs.length, 3, 'no further connection');
    assert.equal(link.pairs[2]?.proxySide.destroyed, false, 'the restored connection is alive');
    assert.equal(a.blocked, false);
    const attaches = (id: string) =>
      link.pairs[2]?.sent.filter((p) => p.cmd === 'publish' && p.topic === `/devices/${id}/attach`).length;
    assert.deepEqual([attaches('a'), attaches('b')], [1, 1], 'each device attached once on it');
  });
});

describe('gateway link restore: DISCONNECT, then the close', () => {
  let link: Link;
  before(async () => {
    link = await startLink(['p', 'q']);
  });
  after(() => link?.stop());

  it('is one loss: every device attached again once, on one new connection', async () => {
    const first = link.pair;
    // aedes (MQTT 3.1.1) never sends DISCONNECT; an MQTT 5 platform does before it closes.
    // It goes out on the broker's side of the connection, then the broker's side closes.
    first.brokerSide.write(mqttPacket.generate({ cmd: 'disconnect' }));
    await settle(20);
    first.brokerSide.destroy();
    await until(() => link.pairs.length === 2, 5000, 'a new connection');
    const attaches = (id: string) =>
      link.pairs[1]?.sent.filter((p) => p.cmd === 'publish' && p.topic === `/devices/${id}/attach`).length;
    await until(() => attaches('p') === 1 && attaches('q') === 1, 5000, 'both attached again');
    await settle(2500);
    assert.equal(link.pairs.length, 2, 'one new connection');
    assert.deepEqual([attaches('p'), attaches('q')], [1, 1], 'each device attached again once');
  });
});

/** A JWT-shaped token whose `exp` is `expSec` (not signed: the link only reads its expiry). */
function jwtExpiring(expSec: number): string {
  const part = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${part({ alg: 'ES256', typ: 'JWT' })}.${part({ exp: expSec })}.c2ln`;
}

describe('gateway link restore: a device the platform will not take again', () => {
  let link: Link;
  let refuseAttach = '';
  const held: Array<() => void> = [];
  const closed = new Map<string, string>();
  const onClose = (id: string) => (reason: string) => closed.set(id, reason);
  before(async () => {
    link = await startLink(['b'], {
      timeoutMs: TIMEOUT_MS,
      authorizePublish: (_client, packet, cb) => {
        // Never answered: as ClearBlade does not answer an attach it refuses.
        if (refuseAttach !== '' && packet.topic === `/devices/${refuseAttach}/attach`)
          held.push(() => cb(null));
        else cb(null);
      },
    });
    const own = plan('x');
    own.attach = {
      ...own.attach,
      payload: Buffer.from(JSON.stringify({ authorization: jwtExpiring(Math.floor(Date.now() / 1000) + 2) })),
    };
    link.members.set('x', await link.hub.attach(own, quietEvents('x', undefined, { onClose: onClose('x') })));
    link.members.set(
      'a',
      await link.hub.attach(plan('a'), quietEvents('a', undefined, { onClose: onClose('a') })),
    );
  });
  after(() => {
    for (const go of held.splice(0)) go();
    return link?.stop();
  });

  it('ends that device alone; the others are attached again on the one new connection', async () => {
    await settle(2500); // x's own JWT expires meanwhile
    refuseAttach = 'a';
    link.pairs[0]?.brokerSide.destroy();
    await until(() => closed.size === 2, TIMEOUT_MS + 6000, 'x and a closed');
    assert.equal(closed.get('x'), 'device_jwt_expired');
    assert.equal(closed.get('a'), 'gateway_reattach_failed');
    const b = link.members.get('b');
    assert.ok(b);
    await until(() => !b.blocked, 5000, 'b back online');
    await settle(500);
    assert.equal(link.pairs.length, 2, 'one new connection: the restore did not start over');
    const sent = link.pairs[1]?.sent ?? [];
    const attaches = (id: string) =>
      sent.filter((p) => p.cmd === 'publish' && p.topic === `/devices/${id}/attach`).length;
    assert.deepEqual(
      [attaches('x'), attaches('a'), attaches('b')],
      [0, 1, 1],
      'no attach with an expired JWT',
    );
  });
});

describe('gateway link restore: a device whose JWT the proxy signs', () => {
  let link: Link;
  const closed: string[] = [];
  let signed = 0;
  const fresh = () => jwtExpiring(Math.floor(Date.now() / 1000) + 3600);
  before(async () => {
    link = await startLink(['b']);
    const own = plan('k');
    const payload = (jwt: string) => Buffer.from(JSON.stringify({ authorization: jwt }));
    // Its first JWT expires soon; a re-attach signs a new one.
    own.attach = { ...own.attach, payload: payload(jwtExpiring(Math.floor(Date.now() / 1000) + 2)) };
    own.freshAttach = async () => {
      signed++;
      return { ...own.attach, payload: payload(fresh()) };
    };
    link.members.set(
      'k',
      await link.hub.attach(own, quietEvents('k', undefined, { onClose: (r) => closed.push(r) })),
    );
  });
  after(() => link?.stop());

  it('is attached again with a JWT signed anew, not closed', async () => {
    await settle(2500);
    link.pairs[0]?.brokerSide.destroy();
    const k = link.members.get('k');
    assert.ok(k);
    await until(() => link.pairs.length === 2 && !k.blocked, 6000, 'k back online');
    assert.deepEqual(closed, []);
    assert.equal(signed, 1);
    const attach = link.pairs[1]?.sent.find((p) => p.cmd === 'publish' && p.topic === '/devices/k/attach');
    assert.ok(attach && attach.cmd === 'publish');
    const jwt = (JSON.parse(attach.payload.toString()) as { authorization: string }).authorization;
    const exp = (JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString()) as { exp: number })
      .exp;
    assert.ok(exp * 1000 > Date.now() + 60_000, 'the new JWT');
  });
});

describe('gateway link restore: a device that leaves while its JWT is signed for the re-attach', () => {
  let link: Link;
  let release: (() => void) | undefined;
  before(async () => {
    link = await startLink(['c']);
    const own = plan('s');
    own.freshAttach = () =>
      new Promise((resolve) => {
        release = () => resolve(own.attach);
      });
    link.members.set('s', await link.hub.attach(own, quietEvents('s')));
  });
  after(() => link?.stop());

  it('is not attached again after its detach: the platform would keep it attached, the proxy not', async () => {
    link.pairs[0]?.brokerSide.destroy();
    await until(() => release !== undefined, 6000, "s's re-attach signing its JWT");
    const s = link.members.get('s');
    assert.ok(s);
    s.end();
    const controls = () =>
      (link.pairs[1]?.sent ?? [])
        .filter((p) => p.cmd === 'publish' && p.topic.startsWith('/devices/s/'))
        .map((p) => (p as { topic: string }).topic.split('/')[3]);
    await until(() => controls().includes('detach'), 3000, "s's detach");
    release?.();
    const c = link.members.get('c');
    await until(() => c !== undefined && !c.blocked, 6000, 'the link restored');
    await settle(200);
    assert.deepEqual(controls(), ['detach'], 'no attach after the detach');
  });
});
