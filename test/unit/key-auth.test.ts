/**
 * Session: a client accepted without credentials that authenticates with a key on a topic
 * (key-auth.ts). The route is asked again with the key; packets that arrive meanwhile keep
 * their order; a connection without an accepted key is closed after KEY_WAIT_MS (tick()).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Packet } from 'mqtt-packet';
import {
  type ConnectDecision,
  PASS_QUIRKS,
  type RouteHandler,
  type SouthHello,
} from '../../src/core/contract.js';
import { topicKey } from '../../src/mapping/topic-key.js';
import { KEY_ATTEMPTS, KEY_WAIT_MS } from '../../src/session/key-auth.js';
import { online, startSession, testMapper } from './session-kit.js';

/** Waits for a key ('good' is accepted); `gate` holds the keyed answer back. */
function keyRoute(gate?: Promise<void>): RouteHandler & { hellos: SouthHello[]; uplinks: string[] } {
  const hellos: SouthHello[] = [];
  const uplinks: string[] = [];
  const accepted = (mapper = testMapper()): ConnectDecision => ({
    accept: true,
    north: { mode: 'local' },
    mapper,
    quirks: PASS_QUIRKS,
    dialect: 'unit',
  });
  return {
    name: 'unit',
    passThrough: false,
    hellos,
    uplinks,
    async openSession(hello) {
      hellos.push(hello);
      if (hello.topicKey === undefined) {
        const gateMapper = testMapper({
          uplink: () => ({ verdict: 'drop', reason: 'unauthenticated' }),
          subscribe: (p) => ({ north: [], granted: p.subscriptions.map(() => ({ code: 0x80 })) }),
        });
        return { ...accepted(gateMapper), awaitsKey: { keyOf: topicKey } };
      }
      if (gate) await gate;
      if (hello.topicKey !== 'good')
        return { accept: false, returnCode: 4, reasonCode: 0x86, reason: 'bad_credentials' };
      return accepted(
        testMapper({
          uplink: (p) => {
            uplinks.push(p.topic);
            return { verdict: 'continue', rule: 'test' };
          },
        }),
      );
    },
  };
}

const sub = (messageId: number, topic: string): Packet => ({
  cmd: 'subscribe',
  messageId,
  subscriptions: [{ topic, qos: 1 }],
});

describe('session: a key given on a topic', () => {
  it('is closed (key_timeout) when no accepted key comes within KEY_WAIT_MS', async () => {
    const c = startSession(keyRoute());
    const connack = await online(c);
    assert.equal((connack as { returnCode?: number }).returnCode, 0);
    const t0 = Date.now();
    c.send(sub(1, 't?access_token=bad'));
    await c.waitPackets(2);
    c.session.tick(t0 + KEY_WAIT_MS - 1000);
    assert.equal(c.isClosed(), false);
    c.session.tick(t0 + KEY_WAIT_MS + 1000);
    assert.deepEqual(await c.waitClosed(), ['key_timeout']);
  });

  it(`refused keys are answered 0x80 and another may be tried, up to ${KEY_ATTEMPTS}: that one closes the connection (key_attempts)`, async () => {
    const route = keyRoute();
    const c = startSession(route);
    await online(c, { username: undefined, password: undefined });
    for (let i = 1; i < KEY_ATTEMPTS; i++) c.send(sub(i, `t?access_token=guess-${i}`));
    const got = await c.waitPackets(KEY_ATTEMPTS);
    assert.deepEqual(
      got.slice(1).map((p) => [p.cmd, (p as { granted?: number[] }).granted]),
      Array.from({ length: KEY_ATTEMPTS - 1 }, () => ['suback', [0x80]]),
    );
    assert.equal(c.isClosed(), false, `${KEY_ATTEMPTS - 1} refused keys: still open`);
    c.send(sub(KEY_ATTEMPTS, `t?access_token=guess-${KEY_ATTEMPTS}`));
    assert.deepEqual(await c.waitClosed(), ['key_attempts']);
    assert.equal(route.hellos.length, 1 + KEY_ATTEMPTS, 'each key was looked up once');
  });

  it('an accepted key ends the wait; the packets sent meanwhile are handled after it, in order', async () => {
    let open!: () => void;
    const route = keyRoute(new Promise<void>((r) => (open = r)));
    const c = startSession(route);
    await online(c, { username: undefined, password: undefined });
    c.send(sub(1, 'a?access_token=good'));
    c.send({
      cmd: 'publish',
      topic: 'b',
      payload: Buffer.from('1'),
      qos: 1,
      messageId: 2,
      retain: false,
      dup: false,
    });
    c.send(sub(3, 'c'));
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(c.packets.length, 1, 'nothing answered while the key is looked up');
    open();
    const got = await c.waitPackets(4);
    assert.deepEqual(
      got.slice(1).map((p) => [p.cmd, (p as { messageId?: number }).messageId]),
      [
        ['suback', 1],
        ['puback', 2],
        ['suback', 3],
      ],
    );
    assert.deepEqual(
      got.filter((p) => p.cmd === 'suback').map((p) => (p as { granted: number[] }).granted),
      [[0], [0]],
    );
    assert.deepEqual(route.uplinks, ['b'], 'the publish went through the keyed session');
    assert.equal(route.hellos[1]?.topicKey, 'good');
    assert.equal(route.hellos[1]?.connect.clientId, 'unit-1', 'the CONNECT the client sent');
    c.session.tick(Date.now() + KEY_WAIT_MS + 1000);
    assert.equal(c.isClosed(), false, 'authenticated: no key timeout');
    c.end();
  });
});
