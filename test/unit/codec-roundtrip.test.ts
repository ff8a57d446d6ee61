/**
 * Codec round trip, mqtt-packet's own habit applied to the proxy's one read path and one
 * write path: valid bytes → PacketChannel → packet → PacketChannel.write → the same bytes,
 * for every packet type and protocol versions 3 (3.1), 4 (3.1.1) and 5, whole, split one
 * byte per chunk, and many packets per chunk.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import mqtt, { type Packet } from 'mqtt-packet';
import { channelHarness, turn } from './kit.js';
import { samples, type Version } from './packets.js';

const VERSIONS: Version[] = [3, 4, 5];

/** A channel that writes back every packet it reads. */
function echo(version: Version | 0) {
  return channelHarness({ protocolVersion: version }, (h, p) => {
    if (p.cmd === 'connect' && version === 0) h.channel.setProtocolVersion(p.protocolVersion ?? 4);
    h.channel.write(p);
  });
}

const gen = (p: Packet, v: Version): Buffer => mqtt.generate(p, { protocolVersion: v });

describe('codec round trip through PacketChannel', () => {
  for (const v of VERSIONS) {
    describe(`protocol version ${v}`, () => {
      for (const s of samples(v)) {
        it(`${s.name}: bytes in = bytes out`, async () => {
          const bytes = gen(s.packet, v);
          const h = echo(v);
          await h.feed(bytes);
          assert.deepEqual(h.closes, []);
          assert.equal(h.packets.length, 1);
          assert.equal(h.packets[0]!.cmd, s.packet.cmd);
          assert.deepEqual(h.sizes, [bytes.length], 'the size reported is the frame size');
          assert.equal(h.received().toString('hex'), bytes.toString('hex'));
          h.channel.destroy();
        });
      }

      it('every packet type in one chunk: same packets, same bytes, same order', async () => {
        const all = samples(v);
        const bytes = Buffer.concat(all.map((s) => gen(s.packet, v)));
        const h = echo(v);
        await h.feed(bytes);
        assert.equal(h.chunksIn, 1);
        assert.deepEqual(h.closes, []);
        assert.deepEqual(
          h.packets.map((p) => p.cmd),
          all.map((s) => s.packet.cmd),
        );
        assert.ok(h.received().equals(bytes), 'output bytes equal the input bytes');
        h.channel.destroy();
      });

      it('every packet type delivered one byte per chunk', async () => {
        const all = samples(v);
        const bytes = Buffer.concat(all.map((s) => gen(s.packet, v)));
        const h = echo(v);
        // Written in one turn, but each write is its own 'data' chunk of one byte.
        for (let i = 0; i < bytes.length; i++) h.peer.write(bytes.subarray(i, i + 1));
        await turn();
        await turn();
        assert.equal(h.chunksIn, bytes.length, 'one data event per byte');
        assert.deepEqual(h.closes, []);
        assert.equal(h.packets.length, all.length);
        assert.deepEqual(
          h.sizes,
          all.map((s) => gen(s.packet, v).length),
        );
        assert.ok(h.received().equals(bytes), 'output bytes equal the input bytes');
        h.channel.destroy();
      });

      it('packets split at every possible offset into two chunks', async () => {
        const all = samples(v).filter((s) => s.packet.cmd !== 'publish' || s.packet.payload.length < 1000);
        for (const s of all) {
          const bytes = gen(s.packet, v);
          for (let cut = 1; cut < bytes.length; cut++) {
            const h = echo(v);
            await h.feed(bytes.subarray(0, cut), bytes.subarray(cut));
            assert.equal(h.packets.length, 1, `${s.name} cut at ${cut}`);
            assert.ok(h.received().equals(bytes), `${s.name} cut at ${cut}: same bytes`);
            h.channel.destroy();
          }
        }
      });
    });
  }

  it('a south channel (version 0) learns the version from CONNECT: MQTT 5 properties survive', async () => {
    const v5 = samples(5);
    const connect = v5.find((s) => s.name.startsWith('CONNECT v5'))!;
    const rest = v5.filter((s) => s.packet.cmd !== 'connect');
    const bytes = Buffer.concat([gen(connect.packet, 5), ...rest.map((s) => gen(s.packet, 5))]);
    const h = echo(0);
    await h.feed(bytes);
    assert.deepEqual(h.closes, []);
    assert.equal(h.packets.length, rest.length + 1);
    assert.ok(h.received().equals(bytes));
    const pub = h.packets.find((p) => p.cmd === 'publish' && p.properties?.contentType);
    assert.equal(pub?.cmd === 'publish' ? pub.properties?.contentType : undefined, 'application/json');
    h.channel.destroy();
  });

  it('a south channel (version 0) with an MQTT 3.1 CONNECT parses and writes 3.1', async () => {
    const v3 = samples(3);
    const bytes = Buffer.concat(v3.map((s) => gen(s.packet, 3)));
    const h = echo(0);
    await h.feed(bytes);
    assert.deepEqual(h.closes, []);
    assert.equal(h.packets.length, v3.length);
    assert.ok(h.received().equals(bytes));
    h.channel.destroy();
  });

  it('MQTT 5 success acknowledgements in the long form come back in the equivalent short form', async () => {
    // 4-byte form: reason code 0 and an empty property length, which MQTT 5 (3.4.2.1) lets a
    // sender omit; the generator emits the 2-byte form, which strict clients require.
    const h = echo(5);
    const long = Buffer.from([0x40, 0x04, 0x00, 0x07, 0x00, 0x00]);
    await h.feed(long);
    assert.equal(h.packets.length, 1);
    assert.equal(h.received().toString('hex'), '40020007');
    h.channel.destroy();
  });

  it('a packet written after close is refused, not sent', async () => {
    const h = echo(4);
    h.channel.end();
    assert.equal(h.channel.write({ cmd: 'pingresp' }), false);
    await turn();
    assert.equal(h.received().length, 0);
  });
});
