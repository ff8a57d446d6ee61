/**
 * Malformed packets and protocol violations from a client, byte by byte, at the Session (the
 * server side of the proxy). The first group is what mqtt-packet's parser rejects. The
 * second group, named SPEC, are packets the MQTT specification says the server MUST treat as
 * malformed or a protocol violation, which mqtt-packet's parser accepts: the channel
 * (topic bytes, property overruns) and the session (`src/session/validate.ts`) close them.
 * Found by the fuzz tests; each names its clause.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { IPublishPacket, Packet } from 'mqtt-packet';
import { turn } from './kit.js';
import { online, startSession, testMapper, testRoute } from './session-kit.js';

/** A session that is online, with a mapper recording uplinks and subscribe/unsubscribe calls. */
async function onlineSession(version: 4 | 5) {
  const calls: string[] = [];
  const mapper = testMapper({
    uplink: (p: IPublishPacket) => {
      calls.push(`uplink ${JSON.stringify(p.topic)}`);
      return {};
    },
    subscribe: (p) => {
      calls.push('subscribe');
      return { north: [], granted: p.subscriptions.map(() => ({ code: 0 })) };
    },
    unsubscribe: () => {
      calls.push('unsubscribe');
      return { north: [], ackOnly: true };
    },
  });
  const c = startSession(testRoute({ mapper }), version);
  await online(c, { protocolVersion: version });
  return { c, calls };
}

/** Sends raw bytes (hex) after CONNECT, then a PINGREQ; resolves with what followed the CONNACK. */
async function afterConnect(version: 4 | 5, hex: string) {
  const { c, calls } = await onlineSession(version);
  c.write(Buffer.from(hex.replace(/\s+/g, ''), 'hex'));
  c.send({ cmd: 'pingreq' });
  await turn();
  await turn();
  const closed = c.isClosed();
  const replies: Packet[] = c.packets.slice(1);
  const reasons = await c.reasons();
  if (!closed) c.end();
  return { closed, replies, calls, reasons };
}

/** A QoS 0 MQTT 5 PUBLISH on topic "a" with these raw property bytes and payload "x". */
function v5Publish(props: number[]): string {
  const body = [0x00, 0x01, 0x61, props.length, ...props, 0x78];
  return Buffer.from([0x30, body.length, ...body]).toString('hex');
}

describe('malformed packets after CONNECT: closed, nothing handled', () => {
  const cases: Array<[string, 4 | 5, string]> = [
    ['PUBREL with header flags 0000 instead of 0010 [MQTT-3.6.1-1]', 4, '60 02 00 01'],
    ['PUBLISH with both QoS bits set [MQTT-3.3.1-4]', 4, '36 05 00 01 61 00 01'],
    ['SUBSCRIBE with header flags 0000 [MQTT-3.8.1-1]', 4, '80 08 00 01 00 03 61 2f 62 00'],
    ['SUBSCRIBE requesting QoS 3 [MQTT-3.8.3-4]', 4, '82 08 00 01 00 03 61 2f 62 03'],
    ['PINGREQ with header flags set', 4, 'c1 00'],
    ['MQTT 5 PUBLISH with an unknown property identifier', 5, v5Publish([0xff, 0x00])],
    ['MQTT 5 PUBLISH whose property length runs past the packet', 5, '30 06 00 01 61 10 01 01'],
  ];
  for (const [name, v, hex] of cases) {
    it(name, async () => {
      const r = await afterConnect(v, hex);
      assert.equal(r.closed, true);
      assert.deepEqual(r.reasons, ['malformed_packet']);
      assert.deepEqual(r.calls, [], 'the mapper never sees it');
      assert.deepEqual(r.replies, [], 'no answer, not even to the PINGREQ behind it');
    });
  }

  it('SUBSCRIBE with no topic filter [MQTT-3.8.3-3]: closed without a SUBACK', async () => {
    // MQTT-3.8.3-3: closed by the session's protocol checks (src/session/validate.ts).
    const r = await afterConnect(4, '82 02 00 01');
    assert.equal(r.closed, true);
    assert.deepEqual(
      r.replies.filter((p) => p.cmd === 'suback'),
      [],
    );
  });
});

describe('SPEC: protocol violations the parser accepts are closed', () => {
  const cases: Array<[string, 4 | 5, string]> = [
    ['MQTT 3.1.1 [MQTT-1.5.3-1]: ill-formed UTF-8 in a PUBLISH topic MUST close', 4, '30 04 00 02 c3 28'],
    ['MQTT 3.1.1 [MQTT-1.5.3-2]: U+0000 in a PUBLISH topic MUST close', 4, '30 04 00 02 61 00'],
    [
      'MQTT 3.1.1 [MQTT-1.5.3-1]: ill-formed UTF-8 after ASCII in a PUBLISH topic MUST close',
      4,
      '30 06 00 04 61 2f c3 28',
    ],
    [
      'MQTT 3.1.1 [MQTT-1.5.3-2]: U+0000 after a non-ASCII character in a PUBLISH topic MUST close',
      4,
      '30 06 00 04 61 c3 a9 00',
    ],
    [
      'MQTT 3.1.1 [MQTT-3.3.2-2, MQTT-4.8.0-1]: a wildcard in a PUBLISH topic closes',
      4,
      '30 05 00 03 61 2f 23',
    ],
    [
      'MQTT 3.1.1 [MQTT-2.3.1-1, MQTT-4.8.0-1]: a QoS 1 PUBLISH with packet id 0 closes',
      4,
      '32 05 00 01 61 00 00',
    ],
    ['MQTT 3.1.1 [MQTT-3.10.3-2, MQTT-4.8.0-1]: UNSUBSCRIBE with no topic filter closes', 4, 'a2 02 00 01'],
    [
      'MQTT 5 [2.2.2.1, 4.13]: a user property running past the property length is malformed',
      5,
      v5Publish([0x26, 0x00, 0x05, 0x6b]),
    ],
    ['MQTT 5 [MQTT-3.3.2-8, 4.13]: Topic Alias 0 is a protocol error', 5, v5Publish([0x23, 0x00, 0x00])],
  ];
  for (const [name, v, hex] of cases) {
    it(name, async () => {
      const r = await afterConnect(v, hex);
      assert.deepEqual(r.calls, [], `handled as valid: ${r.calls.join(', ')}`);
      assert.equal(r.closed, true, 'the connection is closed');
    });
  }

  it('MQTT 3.1.1 [MQTT-3.1.2-2]: an unsupported protocol level gets CONNACK 0x01, then close', async () => {
    // mqtt-packet's parser rejects protocol level 9; a 3.1.1 server MUST still answer
    // CONNACK 0x01 (unacceptable protocol level) and then disconnect.
    const c = startSession(testRoute());
    // CONNECT, protocol name "MQTT", level 9, clean session, keepalive 0, client id "".
    c.write(
      Buffer.from([0x10, 0x0c, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x09, 0x02, 0x00, 0x00, 0x00, 0x00]),
    );
    await c.waitClosed();
    assert.deepEqual(
      c.packets.map((p) => (p.cmd === 'connack' ? p.returnCode : p.cmd)),
      [1],
    );
  });
});

describe('well-formed topics beside the malformed ones', () => {
  it('ASCII and non-ASCII UTF-8 PUBLISH topics reach the mapper', async () => {
    // "a/b", then "a/é/温" (2- and 3-byte characters), each a QoS 0 PUBLISH with payload "x".
    for (const [topic, hex] of [
      ['a/b', '30 06 00 03 61 2f 62 78'],
      ['a/é/温', '30 0b 00 08 61 2f c3 a9 2f e6 b8 a9 78'],
    ] as const) {
      const r = await afterConnect(4, hex);
      assert.equal(r.closed, false);
      assert.deepEqual(r.calls, [`uplink ${JSON.stringify(topic)}`]);
    }
  });
});
