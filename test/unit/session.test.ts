/**
 * Session on an in-memory stream pair with a local test route: the CONNECT gate, refusals,
 * local replies, SUBSCRIBE/UNSUBSCRIBE answered from the plan, PINGREQ, ordering of async
 * uplinks, connect timeout and keepalive via tick().
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { IPublishPacket, Packet } from 'mqtt-packet';
import { turn } from './kit.js';
import { connect, online, startSession, testMapper, testRoute } from './session-kit.js';

const publish = (over: Partial<IPublishPacket> = {}): IPublishPacket => ({
  cmd: 'publish',
  topic: 'dev/1/up',
  payload: Buffer.from('x'),
  qos: 0,
  retain: false,
  dup: false,
  ...over,
});

const cmds = (ps: Packet[]) => ps.map((p) => p.cmd);

describe('Session: the CONNECT gate', () => {
  it('a packet before CONNECT closes the connection without an answer', async () => {
    const c = startSession(testRoute());
    c.send({ cmd: 'pingreq' });
    assert.deepEqual(await c.waitClosed(), ['packet_before_connect']);
    assert.deepEqual(c.packets, []);
  });

  it('a PUBLISH before CONNECT closes and never reaches the mapper', async () => {
    const seen: string[] = [];
    const route = testRoute({
      mapper: testMapper({
        uplink: (p) => {
          seen.push(p.topic);
          return {};
        },
      }),
    });
    const c = startSession(route);
    c.send(publish());
    assert.deepEqual(await c.waitClosed(), ['packet_before_connect']);
    assert.deepEqual(seen, []);
    assert.equal(route.hellos.length, 0);
  });

  it('a second CONNECT after CONNACK closes the connection', async () => {
    const mapper = testMapper();
    const c = startSession(testRoute({ mapper }));
    await online(c);
    c.send(connect({ clientId: 'again' }));
    assert.deepEqual(await c.waitClosed(), ['second_connect']);
    assert.equal(mapper.closed, 1, 'the mapper is closed with the session');
  });

  it('a second CONNECT pipelined behind the first closes the connection once it is read', async () => {
    let open!: () => void;
    const gate = new Promise<void>((r) => {
      open = r;
    });
    const route = testRoute({ gate });
    const c = startSession(route);
    c.send(connect());
    c.send(connect({ clientId: 'again' }));
    await turn();
    open();
    // The stream is paused while the route decides: the second CONNECT is read after it.
    assert.deepEqual(await c.waitClosed(), ['second_connect']);
    assert.ok(c.packets.length <= 1);
  });

  it('the route sees the CONNECT and the listener', async () => {
    const route = testRoute();
    const c = startSession(route);
    await online(c, { clientId: 'hello-1', username: 'u' });
    assert.equal(route.hellos.length, 1);
    assert.equal(route.hellos[0]!.connect.clientId, 'hello-1');
    assert.equal(route.hellos[0]!.listener, 'tcp');
    c.end();
  });

  it('packets pipelined behind CONNECT are answered after the CONNACK, in order', async () => {
    let open!: () => void;
    const gate = new Promise<void>((r) => {
      open = r;
    });
    const c = startSession(testRoute({ gate }));
    c.send(connect());
    c.send(publish({ qos: 1, messageId: 1 }));
    c.send({ cmd: 'pingreq' });
    c.send(publish({ qos: 1, messageId: 2 }));
    await turn();
    assert.deepEqual(c.packets, []);
    open();
    const got = await c.waitPackets(4);
    assert.deepEqual(cmds(got), ['connack', 'puback', 'pingresp', 'puback']);
    assert.deepEqual(
      got.filter((p) => p.cmd === 'puback').map((p) => p.messageId),
      [1, 2],
    );
    c.end();
  });
});

describe('Session: refused CONNECT', () => {
  const refuse = { returnCode: 4, reasonCode: 0x86, reason: 'bad_credentials' };

  it('MQTT 3.1.1: CONNACK return code 4, then close; counted as an auth failure', async () => {
    const c = startSession(testRoute({ refuse }), 4);
    const connack = await online(c);
    assert.equal(connack.cmd, 'connack');
    assert.equal(connack.cmd === 'connack' ? connack.returnCode : -1, 4);
    assert.deepEqual(await c.waitClosed(), ['bad_credentials']);
    const failures = (await c.metrics.authFailuresTotal.get()).values;
    assert.deepEqual(
      failures.map((v) => [v.labels.reason, v.value]),
      [['bad_credentials', 1]],
    );
  });

  it('MQTT 3.1: CONNACK return code 5 for not authorized', async () => {
    const c = startSession(testRoute({ refuse: { returnCode: 5, reasonCode: 0x87, reason: 'denied' } }), 3);
    const connack = await online(c, { protocolVersion: 3 });
    assert.equal(connack.cmd === 'connack' ? connack.returnCode : -1, 5);
    assert.deepEqual(await c.waitClosed(), ['denied']);
  });

  it('MQTT 5: CONNACK reason code 0x86, then close', async () => {
    const c = startSession(testRoute({ refuse }), 5);
    const connack = await online(c, { protocolVersion: 5 });
    assert.equal(connack.cmd === 'connack' ? connack.reasonCode : -1, 0x86);
    assert.deepEqual(await c.waitClosed(), ['bad_credentials']);
  });

  it('a route that throws gives server unavailable (3 / 0x88), never the error text', async () => {
    for (const v of [4, 5] as const) {
      const c = startSession(testRoute({ fail: true }), v);
      const connack = await online(c, { protocolVersion: v });
      assert.ok(connack.cmd === 'connack');
      if (v === 5) assert.equal(connack.reasonCode, 0x88);
      else assert.equal(connack.returnCode, 3);
      assert.equal(connack.properties?.reasonString, undefined);
      assert.deepEqual(await c.waitClosed(), ['route_error']);
    }
  });

  it('packets sent behind a refused CONNECT are never handled', async () => {
    const seen: string[] = [];
    const mapper = testMapper({
      uplink: (p) => {
        seen.push(p.topic);
        return {};
      },
    });
    const c = startSession(testRoute({ refuse, mapper }));
    c.send(connect());
    c.send(publish({ qos: 1, messageId: 1 }));
    await c.waitClosed();
    assert.deepEqual(cmds(c.packets), ['connack']);
    assert.deepEqual(seen, []);
  });
});

describe('Session: online', () => {
  it('PINGREQ is answered with PINGRESP', async () => {
    const c = startSession(testRoute());
    await online(c);
    c.send({ cmd: 'pingreq' });
    c.send({ cmd: 'pingreq' });
    assert.deepEqual(cmds(await c.waitPackets(3)), ['connack', 'pingresp', 'pingresp']);
    c.end();
  });

  it('CONNACK sessionPresent: "north" with no north is false, "always" is true, "never" is false', async () => {
    for (const [mode, expected] of [
      ['north', false],
      ['always', true],
      ['never', false],
    ] as const) {
      for (const v of [4, 5] as const) {
        const c = startSession(testRoute({ quirks: { sessionPresent: mode } }), v);
        const connack = await online(c, { protocolVersion: v, clean: false });
        assert.ok(connack.cmd === 'connack');
        assert.equal(connack.sessionPresent, expected, `${mode} v${v}`);
        assert.equal(v === 5 ? connack.reasonCode : connack.returnCode, 0);
        c.end();
      }
    }
  });

  it('SUBSCRIBE with fixed codes: SUBACK carries them in order (v5 failure codes become 0x80 for 3.1.1)', async () => {
    const mapper = testMapper({
      subscribe: () => ({ north: [], granted: [{ code: 1 }, { code: 0x80 }, { code: 0x87 }, { code: 0 }] }),
    });
    for (const [v, expected] of [
      [4, [1, 0x80, 0x80, 0]],
      [5, [1, 0x80, 0x87, 0]],
    ] as const) {
      const c = startSession(testRoute({ mapper }), v);
      await online(c, { protocolVersion: v });
      c.send({
        cmd: 'subscribe',
        messageId: 31,
        subscriptions: ['a', 'b', 'c', 'd'].map((topic) => ({ topic, qos: 1 as const })),
      });
      const [, suback] = await c.waitPackets(2);
      assert.ok(suback?.cmd === 'suback');
      assert.equal(suback.messageId, 31);
      assert.deepEqual(suback.granted, expected);
      c.end();
    }
  });

  it('SUBSCRIBE depending on north codes with no north fails those filters (0x80)', async () => {
    const mapper = testMapper({
      subscribe: () => ({ north: [{ topic: 'n', qos: 1 }], granted: [{ from: [0] }, { code: 2 }] }),
    });
    const c = startSession(testRoute({ mapper }));
    await online(c);
    c.send({
      cmd: 'subscribe',
      messageId: 2,
      subscriptions: [
        { topic: 'a', qos: 1 },
        { topic: 'b', qos: 2 },
      ],
    });
    const [, suback] = await c.waitPackets(2);
    assert.deepEqual(suback?.cmd === 'suback' ? suback.granted : [], [0x80, 2]);
    c.end();
  });

  it('a subscribe plan that says disconnect closes with its reason, no SUBACK', async () => {
    const mapper = testMapper({
      subscribe: () => ({ north: [], granted: [], disconnect: 'bad_subscription' }),
    });
    const c = startSession(testRoute({ mapper }));
    await online(c);
    c.send({ cmd: 'subscribe', messageId: 3, subscriptions: [{ topic: '#', qos: 0 }] });
    assert.deepEqual(await c.waitClosed(), ['bad_subscription']);
    assert.deepEqual(cmds(c.packets), ['connack']);
  });

  it('UNSUBSCRIBE ackOnly: UNSUBACK with the same id (v5: success per filter)', async () => {
    for (const v of [4, 5] as const) {
      const c = startSession(testRoute(), v);
      await online(c, { protocolVersion: v });
      c.send({ cmd: 'unsubscribe', messageId: 41, unsubscriptions: ['a', 'b/#'] });
      const [, unsuback] = await c.waitPackets(2);
      assert.ok(unsuback?.cmd === 'unsuback');
      assert.equal(unsuback.messageId, 41);
      if (v === 5) assert.deepEqual((unsuback as unknown as { granted: number[] }).granted, [0, 0]);
      c.end();
    }
  });

  it('DISCONNECT from the client closes quietly with client_disconnect', async () => {
    const mapper = testMapper();
    const c = startSession(testRoute({ mapper }));
    await online(c);
    c.send({ cmd: 'disconnect' });
    assert.deepEqual(await c.waitClosed(), ['client_disconnect']);
    assert.equal(mapper.closed, 1);
    assert.equal(c.ctx.sessions.size, 0, 'the session left the sweeper set');
  });

  it('a client that vanishes closes the session (peer_closed) and its mapper', async () => {
    const mapper = testMapper();
    const c = startSession(testRoute({ mapper }));
    await online(c);
    assert.equal(c.ctx.sessions.size, 1);
    c.end();
    await turn();
    await turn();
    assert.deepEqual(await c.reasons(), ['peer_closed']);
    assert.equal(mapper.closed, 1);
    assert.equal(c.ctx.sessions.size, 0);
  });

  it('onOnline publishes reach the client after the CONNACK', async () => {
    const mapper = testMapper({
      onOnline: async () => [{ topic: 'sync/1', payload: Buffer.from('state'), qos: 0, retain: false }],
    });
    const c = startSession(testRoute({ mapper }));
    await online(c);
    const [, p] = await c.waitPackets(2);
    assert.ok(p?.cmd === 'publish');
    assert.equal(p.topic, 'sync/1');
    assert.equal(p.payload.toString(), 'state');
    c.end();
  });
});
