/**
 * Session: dialect quirks enforced generically, uplink outcomes (async order, verdicts,
 * local replies toward the client), and time-based closes driven through tick().
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { IPublishPacket, Packet } from 'mqtt-packet';
import type { Outcome, PublishOut } from '../../src/core/contract.js';
import { turn } from './kit.js';
import { online, startSession, testMapper, testRoute } from './session-kit.js';

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

/** A mapper recording every uplink it is given. */
function recorder(reply?: (p: IPublishPacket) => Outcome | Promise<Outcome>) {
  const seen: IPublishPacket[] = [];
  const mapper = testMapper({
    uplink: (p) => {
      seen.push({ ...p });
      return reply ? reply(p) : { verdict: 'continue' };
    },
  });
  return { seen, mapper };
}

const reply = (topic: string, qos: 0 | 1 | 2 = 0): PublishOut => ({
  topic,
  payload: Buffer.from(topic),
  qos,
  retain: false,
});

describe('Session quirks', () => {
  it('dupWithQos0Disconnect: a QoS 0 PUBLISH with DUP closes; without the quirk it passes', async () => {
    const on = recorder();
    const c = startSession(testRoute({ mapper: on.mapper, quirks: { dupWithQos0Disconnect: true } }));
    await online(c);
    c.send(publish({ topic: 'ok', qos: 0 }));
    c.send(publish({ topic: 'dup', qos: 0, dup: true }));
    assert.deepEqual(await c.waitClosed(), ['dup_with_qos0']);
    assert.deepEqual(
      on.seen.map((p) => p.topic),
      ['ok'],
    );

    const off = recorder();
    const d = startSession(testRoute({ mapper: off.mapper }));
    await online(d);
    d.send(publish({ topic: 'dup', qos: 0, dup: true }));
    d.send({ cmd: 'pingreq' });
    await d.waitPackets(2);
    assert.deepEqual(
      off.seen.map((p) => p.topic),
      ['dup'],
    );
    d.end();
  });

  for (const cmd of ['puback', 'pubrec', 'pubrel', 'pubcomp'] as const) {
    it(`clientAcksDisconnect: a ${cmd.toUpperCase()} from the client closes`, async () => {
      const c = startSession(testRoute({ quirks: { clientAcksDisconnect: true } }));
      await online(c);
      c.send({ cmd, messageId: 1 });
      assert.deepEqual(await c.waitClosed(), ['client_ack_not_allowed']);
    });
  }

  it('without clientAcksDisconnect an unknown PUBACK is ignored and the session goes on', async () => {
    const c = startSession(testRoute());
    await online(c);
    c.send({ cmd: 'puback', messageId: 9 });
    c.send({ cmd: 'pingreq' });
    assert.deepEqual(cmds(await c.waitPackets(2)), ['connack', 'pingresp']);
    assert.equal(c.isClosed(), false);
    c.end();
  });

  it('maxPayloadBytes: a payload at the limit passes, one byte over closes', async () => {
    const r = recorder();
    const c = startSession(testRoute({ mapper: r.mapper, quirks: { maxPayloadBytes: 16 } }));
    await online(c);
    c.send(publish({ topic: 'at', payload: Buffer.alloc(16, 1) }));
    c.send(publish({ topic: 'over', payload: Buffer.alloc(17, 1) }));
    assert.deepEqual(await c.waitClosed(), ['payload_too_large']);
    assert.deepEqual(
      r.seen.map((p) => p.topic),
      ['at'],
    );
  });

  it('qos2 as_qos0: the mapper sees QoS 0 and the client gets no PUBREC', async () => {
    const r = recorder();
    const c = startSession(testRoute({ mapper: r.mapper, quirks: { qos2: 'as_qos0' } }));
    await online(c);
    c.send(publish({ qos: 2, messageId: 5 }));
    c.send({ cmd: 'pingreq' });
    const got = await c.waitPackets(2);
    await turn();
    assert.deepEqual(cmds(got), ['connack', 'pingresp'], 'no PUBREC before the PINGRESP');
    assert.equal(r.seen[0]?.qos, 0);
    c.end();
  });

  it('qos2 pass: PUBREC, then PUBCOMP on PUBREL (nothing north to wait for)', async () => {
    const r = recorder();
    const c = startSession(testRoute({ mapper: r.mapper }));
    await online(c);
    c.send(publish({ qos: 2, messageId: 6 }));
    const [, rec] = await c.waitPackets(2);
    assert.ok(rec?.cmd === 'pubrec' && rec.messageId === 6);
    c.send({ cmd: 'pubrel', messageId: 6 });
    const [, , comp] = await c.waitPackets(3);
    assert.ok(comp?.cmd === 'pubcomp' && comp.messageId === 6);
    assert.equal(r.seen[0]?.qos, 2);
    c.end();
  });

  it('retain ignore: the mapper sees retain cleared; retain pass keeps it', async () => {
    for (const [mode, expected] of [
      ['ignore', false],
      ['pass', true],
    ] as const) {
      const r = recorder();
      const c = startSession(testRoute({ mapper: r.mapper, quirks: { retain: mode } }));
      await online(c);
      c.send(publish({ retain: true }));
      c.send({ cmd: 'pingreq' });
      await c.waitPackets(2);
      assert.equal(r.seen[0]?.retain, expected, mode);
      c.end();
    }
  });
});

describe('Session uplink outcomes', () => {
  it('an async uplink holds back later packets: order is kept', async () => {
    const events: string[] = [];
    let release!: () => void;
    const slow = new Promise<void>((r) => {
      release = r;
    });
    const r = recorder((p) => {
      events.push(`map ${p.topic}`);
      if (p.topic === 'slow')
        return slow.then(() => {
          events.push('slow resolved');
          return { south: [reply('slow-done')] };
        });
      return { south: [reply(`${p.topic}-done`)] };
    });
    const c = startSession(testRoute({ mapper: r.mapper }));
    await online(c);
    c.send(publish({ topic: 'slow', qos: 1, messageId: 1 }));
    c.send(publish({ topic: 'fast', qos: 1, messageId: 2 }));
    c.send({ cmd: 'pingreq' });
    c.send(publish({ topic: 'last', qos: 0 }));
    await turn();
    await turn();
    assert.deepEqual(events, ['map slow'], 'nothing else is mapped while the first is pending');
    assert.deepEqual(cmds(c.packets), ['connack']);
    release();
    const got = await c.waitPackets(7);
    assert.deepEqual(events, ['map slow', 'slow resolved', 'map fast', 'map last']);
    assert.deepEqual(
      got.map((p) => (p.cmd === 'publish' ? p.topic : `${p.cmd}${p.messageId ?? ''}`)),
      ['connack', 'puback1', 'slow-done', 'puback2', 'fast-done', 'pingresp', 'last-done'],
    );
    c.end();
  });

  it('an async uplink that rejects closes with mapping_error and acknowledges nothing', async () => {
    const r = recorder(() => Promise.reject(new Error('lookup failed')));
    const c = startSession(testRoute({ mapper: r.mapper }));
    await online(c);
    c.send(publish({ qos: 1, messageId: 3 }));
    assert.deepEqual(await c.waitClosed(), ['mapping_error']);
    assert.deepEqual(cmds(c.packets), ['connack']);
  });

  it("verdict 'disconnect' closes with the outcome's reason, without PUBACK", async () => {
    const r = recorder(() => ({ verdict: 'disconnect', reason: 'forbidden_topic' }));
    const c = startSession(testRoute({ mapper: r.mapper }));
    await online(c);
    c.send(publish({ qos: 1, messageId: 4 }));
    assert.deepEqual(await c.waitClosed(), ['forbidden_topic']);
    assert.deepEqual(cmds(c.packets), ['connack']);
  });

  it("verdict 'drop' still acknowledges QoS 1 (consumed) and counts the drop", async () => {
    const r = recorder(() => ({ verdict: 'drop', reason: 'unmapped', rule: 'r1' }));
    const c = startSession(testRoute({ mapper: r.mapper }));
    await online(c);
    c.send(publish({ qos: 1, messageId: 5 }));
    const [, ack] = await c.waitPackets(2);
    assert.ok(ack?.cmd === 'puback' && ack.messageId === 5);
    const counted = (await c.metrics.messagesTotal.get()).values.find((v) => v.labels.outcome === 'dropped');
    assert.equal(counted?.value, 1);
    c.end();
  });

  it('Outcome.south local replies are delivered at QoS <= 1 and acknowledged by the client', async () => {
    const r = recorder(() => ({ south: [reply('r/two', 2), reply('r/one', 1), reply('r/zero', 0)] }));
    const c = startSession(testRoute({ mapper: r.mapper }));
    await online(c);
    c.send(publish({ qos: 0 }));
    const got = (await c.waitPackets(4)).filter((p): p is IPublishPacket => p.cmd === 'publish');
    assert.deepEqual(
      got.map((p) => [p.topic, p.qos]),
      [
        ['r/two', 1],
        ['r/one', 1],
        ['r/zero', 0],
      ],
    );
    const ids = got.filter((p) => p.qos === 1).map((p) => p.messageId);
    assert.equal(new Set(ids).size, 2);
    for (const id of ids) c.send({ cmd: 'puback', messageId: id });
    c.send({ cmd: 'pingreq' });
    await c.waitPackets(5);
    assert.equal(c.isClosed(), false);
    c.end();
  });

  it('Outcome.south with maxDownlinkQos 0: local replies go out at QoS 0', async () => {
    const r = recorder(() => ({ south: [reply('r/two', 2), reply('r/one', 1)] }));
    const c = startSession(testRoute({ mapper: r.mapper, quirks: { maxDownlinkQos: 0 } }));
    await online(c);
    c.send(publish({ qos: 1, messageId: 8 }));
    const got = await c.waitPackets(4);
    const pubs = got.filter((p): p is IPublishPacket => p.cmd === 'publish');
    assert.deepEqual(
      pubs.map((p) => p.qos),
      [0, 0],
    );
    c.end();
  });
});

describe('Session timeouts through tick()', () => {
  it('no CONNECT within connectTimeoutMs closes with connect_timeout', async () => {
    const c = startSession(testRoute(), 4, { connectTimeoutMs: 1000 });
    c.session.tick(Date.now() + 500);
    await turn();
    assert.equal(c.isClosed(), false, 'still inside the window');
    c.session.tick(Date.now() + 1500);
    assert.deepEqual(await c.waitClosed(), ['connect_timeout']);
  });

  it('the connect timeout does not apply once CONNECT was handled', async () => {
    const c = startSession(testRoute(), 4, { connectTimeoutMs: 1000 });
    await online(c);
    c.session.tick(Date.now() + 60_000);
    await turn();
    assert.equal(c.isClosed(), false);
    c.end();
  });

  it('keepalive: silent for more than 1.5 x keepalive closes; within it does not', async () => {
    const c = startSession(testRoute());
    await online(c, { keepalive: 10 });
    c.session.tick(Date.now() + 14_000);
    await turn();
    assert.equal(c.isClosed(), false, 'inside 1.5 x 10 s');
    c.send({ cmd: 'pingreq' });
    await c.waitPackets(2);
    c.session.tick(Date.now() + 15_001);
    assert.deepEqual(await c.waitClosed(), ['keepalive_timeout']);
  });

  it('keepalive 0 never times out', async () => {
    const c = startSession(testRoute());
    await online(c, { keepalive: 0 });
    c.session.tick(Date.now() + 24 * 3600_000);
    await turn();
    assert.equal(c.isClosed(), false);
    c.end();
  });

  it('drain() on an idle MQTT 5 session sends DISCONNECT 0x8B and closes with shutdown', async () => {
    const c = startSession(testRoute(), 5);
    await online(c, { protocolVersion: 5 });
    await c.session.drain(1000);
    const got = await c.waitPackets(2);
    assert.ok(got[1]?.cmd === 'disconnect' && got[1].reasonCode === 0x8b);
    assert.deepEqual(await c.waitClosed(), ['shutdown']);
  });

  it('an MQTT 5 topic alias above the maximum the CONNACK gave (none: 0) closes with bad_topic_alias, nothing learned', async () => {
    const seen: string[] = [];
    const mapper = testMapper({
      uplink: (p: IPublishPacket) => {
        seen.push(p.topic);
        return { verdict: 'drop', reason: 'unmapped' };
      },
    });
    const c = startSession(testRoute({ mapper }), 5);
    await online(c, { protocolVersion: 5 });
    c.send({
      cmd: 'publish',
      topic: 't/aliased',
      payload: Buffer.from('1'),
      qos: 0,
      retain: false,
      dup: false,
      properties: { topicAlias: 1 },
    });
    assert.deepEqual(await c.waitClosed(), ['bad_topic_alias']);
    assert.deepEqual(seen, [], 'the publish never reached the mapper');
    assert.equal(c.session.southAliases?.size ?? 0, 0, 'no alias learned');
  });

  it('a PUBREL the session does not know, on a route that sends QoS 2 north as QoS 1, is completed at once', async () => {
    const c = startSession(testRoute({ quirks: { qos2: 'as_qos1' } }));
    await online(c);
    const before = c.packets.length;
    c.send({ cmd: 'pubrel', messageId: 9 });
    const got = await c.waitPackets(before + 1);
    assert.deepEqual(
      got.slice(before).map((p) => [p.cmd, p.messageId]),
      [['pubcomp', 9]],
    );
    assert.equal(c.isClosed(), false);
  });

  it('drain() ends when the session closes under it, with a message still in flight', async () => {
    const mapper = testMapper({
      uplink: (p: IPublishPacket) => ({
        verdict: 'continue',
        rule: 't',
        north: [{ topic: `n/${p.topic}`, payload: Buffer.from(p.payload), qos: 1, retain: false }],
      }),
    });
    const c = startSession(testRoute({ mapper }));
    await online(c);
    c.send({
      cmd: 'publish',
      topic: 'x',
      payload: Buffer.from('1'),
      qos: 1,
      retain: false,
      dup: false,
      messageId: 1,
    });
    for (let i = 0; i < 50 && (c.session.upRelay?.size ?? 0) === 0; i++) await turn();
    assert.equal(c.session.upRelay?.size, 1, 'the uplink waits for its north PUBACK');
    let drained = false;
    const drain = c.session.drain(60_000).then(() => {
      drained = true;
    });
    c.end(); // the client leaves during the shutdown drain
    await c.waitClosed();
    for (let i = 0; i < 50 && !drained; i++) await turn();
    assert.equal(drained, true, 'the drain finished with the session, not with its 60 s grace');
    await drain;
  });
});
