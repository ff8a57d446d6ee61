/**
 * The shared frame parsers (src/codec/frame-parser.ts): connections lend their parser
 * settings with each frame, so one connection's protocol version, errors, nested parses and
 * failing handlers never reach another's packets.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import mqtt, { type Packet } from 'mqtt-packet';
import { type FrameSink, parseFrame } from '../../src/codec/frame-parser.js';

class Sink implements FrameSink {
  parserSettings: object;
  packets: Packet[] = [];
  errors: string[] = [];
  constructor(
    protocolVersion?: number,
    private readonly then?: (p: Packet) => void,
  ) {
    this.parserSettings = protocolVersion ? { protocolVersion } : {};
  }
  onParsed(p: Packet): void {
    this.packets.push(p);
    this.then?.(p);
  }
  onParseError(err: Error): void {
    this.errors.push(err.message);
  }
}

/** What a connection's own mqtt-packet parser makes of the same frames (as plain objects). */
function ownParser(frames: Buffer[], protocolVersion?: number): object[] {
  const p = mqtt.parser(protocolVersion ? { protocolVersion } : {});
  const out: Packet[] = [];
  p.on('packet', (x: Packet) => out.push(x));
  for (const f of frames) p.parse(f);
  return plain(out);
}

/** Packets as plain objects (the proxy's parsers come from a module instance of their own). */
const plain = (ps: Packet[]): object[] => ps.map((p) => ({ ...p }));

const connect5 = mqtt.generate(
  { cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: 'a', clean: true, keepalive: 30 },
  { protocolVersion: 5 },
);
const connect4 = mqtt.generate({
  cmd: 'connect',
  protocolId: 'MQTT',
  protocolVersion: 4,
  clientId: 'b',
  clean: true,
  keepalive: 30,
});
const publish5 = mqtt.generate(
  {
    cmd: 'publish',
    topic: 't/5',
    payload: Buffer.from('x'),
    qos: 1,
    messageId: 7,
    retain: false,
    dup: false,
    properties: { contentType: 'text/plain', userProperties: { a: '1' } },
  },
  { protocolVersion: 5 },
);
const publish4 = mqtt.generate({
  cmd: 'publish',
  topic: 't/4',
  payload: Buffer.from('y'),
  qos: 1,
  messageId: 9,
  retain: false,
  dup: false,
});
/** SUBSCRIBE asking for QoS 3: mqtt-packet refuses it in the middle of the packet. */
const badSubscribe = Buffer.from('820800010003612f6203', 'hex');

describe('shared frame parsers', () => {
  it('interleaved connections keep their own protocol version (taken from each CONNECT)', () => {
    const a = new Sink();
    const b = new Sink();
    for (const [frame, sink] of [
      [connect5, a],
      [connect4, b],
      [publish5, a],
      [publish4, b],
      [publish5, a],
    ] as const)
      parseFrame(frame, sink);
    assert.deepEqual(plain(a.packets), ownParser([connect5, publish5, publish5]));
    assert.deepEqual(plain(b.packets), ownParser([connect4, publish4]));
    const p = a.packets[1] as mqtt.IPublishPacket;
    assert.equal(p.properties?.contentType, 'text/plain', 'the v5 properties were read as v5');
    assert.deepEqual(a.errors, []);
    assert.deepEqual(b.errors, []);
  });

  it('a parse error reaches only its own connection; the next frames of others parse whole', () => {
    const bad = new Sink(4);
    const good = new Sink();
    parseFrame(badSubscribe, bad);
    assert.deepEqual(bad.errors, ['Invalid subscribe QoS, must be <= 2']);
    parseFrame(connect4, good);
    parseFrame(publish4, good);
    assert.deepEqual(plain(good.packets), ownParser([connect4, publish4]));
    assert.deepEqual(good.errors, []);
  });

  it('a frame parsed from inside another frame’s handler gets a parser of its own', () => {
    const inner = new Sink(4);
    const outer = new Sink(4, () => parseFrame(publish4, inner));
    parseFrame(publish4, outer);
    parseFrame(publish4, outer);
    assert.equal(outer.packets.length, 2);
    assert.equal(inner.packets.length, 2);
    assert.deepEqual(plain(inner.packets), ownParser([publish4, publish4], 4));
  });

  it('a handler that throws: the error reaches the caller and the next connection is unaffected', () => {
    const failing = new Sink(4, () => {
      throw new Error('handler failed');
    });
    assert.throws(() => parseFrame(publish4, failing), /handler failed/);
    const next = new Sink(4);
    parseFrame(publish4, next);
    parseFrame(publish4, next);
    assert.deepEqual(plain(next.packets), ownParser([publish4, publish4], 4));
  });
});
