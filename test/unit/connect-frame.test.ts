/**
 * CONNECT rules checked on the raw bytes (flags mqtt-packet's parsed object hides, surplus
 * bytes it ignores), CONNECTs mqtt-packet will not write (MQTT 5 empty client identifier with
 * clean start 0), and MQTT 5 properties written back in the order they were received. A
 * PacketChannel on an in-memory stream reads the bytes a client would send; echoing the parsed
 * packet back through the channel must give the same bytes (what pass-through relies on).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { IPublishPacket, Packet } from 'mqtt-packet';
import { connectLayout } from '../../src/codec/connect-frame.js';
import { type ChannelHarness, channelHarness } from './kit.js';

const str = (s: string): Buffer => {
  const b = Buffer.from(s, 'utf8');
  const len = Buffer.alloc(2);
  len.writeUInt16BE(b.length);
  return Buffer.concat([len, b]);
};
const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};
const user = (k: string, v: string): Buffer => Buffer.concat([Buffer.from([0x26]), str(k), str(v)]);
const prop = (id: number, value: Buffer): Buffer => Buffer.concat([Buffer.from([id]), value]);
/** A property block with its length (all blocks here are under 128 bytes). */
const block = (...entries: Buffer[]): Buffer => {
  const body = Buffer.concat(entries);
  assert.ok(body.length < 128);
  return Buffer.concat([Buffer.from([body.length]), body]);
};
/** A whole packet from its type byte and body (remaining length under 16384 bytes). */
const frame = (type: number, ...body: Buffer[]): Buffer => {
  const b = Buffer.concat(body);
  assert.ok(b.length < 16384);
  const len = b.length < 128 ? [b.length] : [(b.length % 128) | 0x80, b.length >> 7];
  return Buffer.concat([Buffer.from([type, ...len]), b]);
};

interface ConnectSpec {
  version: 4 | 5;
  flags: number;
  clientId?: string;
  properties?: Buffer;
  will?: { properties?: Buffer; topic: string; payload: string };
  rest?: Buffer[];
}
/** A CONNECT with exactly the given flags byte (whatever fields follow). */
function connectBytes(c: ConnectSpec): Buffer {
  const parts = [str('MQTT'), Buffer.from([c.version, c.flags, 0, 10])];
  if (c.version === 5) parts.push(c.properties ?? block());
  parts.push(str(c.clientId ?? 'cf-client'));
  if (c.will) {
    if (c.version === 5) parts.push(c.will.properties ?? block());
    parts.push(str(c.will.topic), str(c.will.payload));
  }
  parts.push(...(c.rest ?? []));
  return frame(0x10, ...parts);
}

const CLEAN = 0x02;
const WILL = 0x04;
const PASSWORD = 0x40;
const USERNAME = 0x80;

/** A channel that writes every packet it parses straight back (pass-through in miniature). */
function echo(): ChannelHarness {
  return channelHarness({}, (h: ChannelHarness, p: Packet) => {
    if (p.cmd === 'connect') h.channel.setProtocolVersion(p.protocolVersion ?? 4);
    h.channel.write(p);
  });
}

describe('unit: CONNECT rules on the raw bytes', () => {
  for (const version of [4, 5] as const) {
    it(`a CONNECT carrying a username without the username flag is closed without a word (v${version})`, async () => {
      const bytes = connectBytes({ version, flags: CLEAN, rest: [str('user')] });
      assert.equal(connectLayout(bytes)?.violation, 'connect_surplus_bytes');
      const h = echo();
      await h.feed(bytes);
      assert.deepEqual(h.packets, []);
      assert.equal(h.closes[0]?.reason, 'malformed_packet');
      assert.equal(h.received().length, 0);
    });

    it(`the same CONNECT with its username flag is read (v${version})`, async () => {
      const bytes = connectBytes({ version, flags: CLEAN | USERNAME, rest: [str('user')] });
      assert.equal(connectLayout(bytes)?.violation, undefined);
      const h = echo();
      await h.feed(bytes);
      assert.equal(h.packets.length, 1);
      assert.equal((h.packets[0] as { username?: string }).username, 'user');
      assert.deepEqual(h.closes, []);
    });

    it(`will QoS 3 is closed (v${version})`, async () => {
      const bytes = connectBytes({ version, flags: CLEAN | WILL | 0x18, will: { topic: 'w', payload: 'x' } });
      const h = echo();
      await h.feed(bytes);
      assert.deepEqual(h.packets, []);
      assert.equal(h.closes[0]?.reason, 'malformed_packet');
    });
  }

  it('a password without a username is closed in 3.1.1 and read in MQTT 5', async () => {
    const v4 = echo();
    await v4.feed(connectBytes({ version: 4, flags: CLEAN | PASSWORD, rest: [str('secret')] }));
    assert.deepEqual(v4.packets, []);
    assert.equal(v4.closes[0]?.reason, 'malformed_packet');
    const v5 = echo();
    const bytes = connectBytes({ version: 5, flags: CLEAN | PASSWORD, rest: [str('secret')] });
    await v5.feed(bytes);
    assert.equal(v5.packets.length, 1);
    assert.deepEqual(v5.closes, []);
    // Written on as it came (mqtt-packet alone refuses to write a password without a username).
    assert.deepEqual(v5.received(), bytes);
  });

  it('an unknown protocol level is left to the parser (CONNACK 1 is its business)', () => {
    const bytes = connectBytes({ version: 4, flags: CLEAN });
    bytes[8] = 6;
    assert.equal(connectLayout(bytes), undefined);
  });
});

describe('unit: CONNECT and PUBLISH written back as they were received', () => {
  it('MQTT 5 empty client identifier with clean start 0', async () => {
    const bytes = connectBytes({ version: 5, flags: 0, clientId: '' });
    const h = echo();
    await h.feed(bytes);
    assert.deepEqual(h.closes, []);
    assert.deepEqual(h.received(), bytes);
  });

  it('will properties keep their order (user properties around other properties)', async () => {
    const willProps = block(
      user('key1', 'value1'),
      prop(0x08, str('response/topic')),
      prop(0x09, str('data')),
      prop(0x18, u32(0)),
      prop(0x01, Buffer.from([1])),
      prop(0x03, str('application/test')),
      user('key2', 'value2'),
    );
    const bytes = connectBytes({
      version: 5,
      flags: CLEAN | WILL,
      properties: block(user('c', '1'), prop(0x11, u32(60)), user('d', '2'), user('c', '3')),
      will: { properties: willProps, topic: 'will/test', payload: 'will payload' },
    });
    const h = echo();
    await h.feed(bytes);
    assert.deepEqual(h.received(), bytes);
  });

  it('PUBLISH user properties with a repeated key keep their order (a, b, a)', async () => {
    const props = block(user('a', '1'), prop(0x03, str('text/plain')), user('b', '2'), user('a', '3'));
    const bytes = frame(0x32, str('t/1'), Buffer.from([0, 7]), props, Buffer.from('payload'));
    const h = channelHarness({ protocolVersion: 5 }, (hh, p) => hh.channel.write(p));
    await h.feed(bytes);
    assert.deepEqual(h.received(), bytes);
  });

  it('PUBLISH user properties with other properties between them stay where they were', async () => {
    const props = block(user('x', '1'), prop(0x08, str('reply/to')), user('y', '2'), prop(0x02, u32(30)));
    const bytes = frame(0x30, str('t/4'), props, Buffer.from('payload'));
    const h = channelHarness({ protocolVersion: 5 }, (hh, p) => hh.channel.write(p));
    await h.feed(bytes);
    assert.deepEqual(h.received(), bytes);
  });

  it('user properties keep their order when other properties of the PUBLISH change', async () => {
    const bytes = frame(
      0x30,
      str('t/2'),
      block(user('a', '1'), user('b', '2'), user('a', '3')),
      Buffer.from('p'),
    );
    const h = channelHarness({ protocolVersion: 5 }, (hh, p) => {
      const pub = p as IPublishPacket;
      // A mapping gives the copy new properties but passes the user properties on.
      hh.channel.write({
        ...pub,
        topic: 'mapped/2',
        properties: { contentType: 'application/json', userProperties: pub.properties!.userProperties! },
      });
    });
    await h.feed(bytes);
    const out = h.received();
    const users = Buffer.concat([user('a', '1'), user('b', '2'), user('a', '3')]);
    assert.ok(out.includes(users), `user properties in order in ${out.toString('hex')}`);
    assert.ok(out.includes(str('mapped/2')));
    assert.ok(out.includes(str('application/json')));
  });

  it('user properties changed in place are written as they now are, not as received', async () => {
    const bytes = frame(
      0x30,
      str('t/3'),
      block(user('a', '1'), user('b', '2'), user('a', '3')),
      Buffer.from('p'),
    );
    const h = channelHarness({ protocolVersion: 5 }, (hh, p) => {
      const pub = p as IPublishPacket;
      const up = pub.properties!.userProperties!;
      up.a = 'only';
      hh.channel.write(pub);
    });
    await h.feed(bytes);
    const out = h.received();
    assert.ok(out.includes(Buffer.concat([user('a', 'only'), user('b', '2')])), out.toString('hex'));
    assert.ok(!out.includes(str('3')));
  });
});
