/**
 * Fixed-header flag bits of PUBREL, SUBSCRIBE and UNSUBSCRIBE: MQTT 3.1.1 and 5 require 0x2
 * (any other value closes the connection); MQTT 3.1 does not check them (a resent PUBREL
 * carries DUP) and mosquitto accepts any. The proxy in pass-through must answer the same raw
 * packets as mosquitto does: each case is sent to mosquitto directly and through the proxy.
 * The bytes are written by hand: no encoder writes these flags.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Packet } from 'mqtt-packet';
import { passThroughRoute } from '../../src/routes/passthrough.js';
import { type MosquittoBroker, startMosquitto } from '../helpers/mosquitto.js';
import { startTestProxy, type TestProxy } from '../helpers/proxy.js';
import { connectPacket, rawConnect } from '../helpers/raw.js';

/** SUBSCRIBE id 7 to f/x at QoS 1, header byte `h`. */
const subscribe = (h: number) => Buffer.from([h, 8, 0, 7, 0, 3, 0x66, 0x2f, 0x78, 1]);
/** UNSUBSCRIBE id 8 from f/x, header byte `h`. */
const unsubscribe = (h: number) => Buffer.from([h, 7, 0, 8, 0, 3, 0x66, 0x2f, 0x78]);
/** PUBREL id 9 (no flow in progress: completed all the same), header byte `h`. */
const pubrel = (h: number) => Buffer.from([h, 2, 0, 9]);

const CASES: { name: string; bytes: Buffer; answer: string }[] = [
  { name: 'SUBSCRIBE with flags 0x0', bytes: subscribe(0x80), answer: 'suback' },
  { name: 'SUBSCRIBE with DUP (0xA)', bytes: subscribe(0x8a), answer: 'suback' },
  { name: 'UNSUBSCRIBE with flags 0x0', bytes: unsubscribe(0xa0), answer: 'unsuback' },
  { name: 'PUBREL with flags 0x0', bytes: pubrel(0x60), answer: 'pubcomp' },
  { name: 'PUBREL with DUP (0xA)', bytes: pubrel(0x6a), answer: 'pubcomp' },
];

/** What a server does with `bytes` after CONNECT: the packet it answers, or 'closed'. */
async function answer(port: number, v: 3 | 4, bytes: Buffer): Promise<string> {
  const c = await rawConnect(port, v);
  try {
    c.send(connectPacket({ protocolVersion: v, clientId: `flags-${v}-${bytes[0]}` }), v);
    const connack = await c.nextPacket();
    assert.ok(connack.cmd === 'connack' && connack.returnCode === 0);
    c.write(bytes);
    let p: Packet;
    try {
      p = await c.nextPacket(5000);
    } catch {
      await c.closed(5000);
      return 'closed';
    }
    return p.cmd;
  } finally {
    c.destroy();
  }
}

describe('MQTT 3.1 fixed-header flags: the proxy answers as mosquitto', () => {
  let broker: MosquittoBroker;
  let proxy: TestProxy;

  before(async () => {
    broker = await startMosquitto();
    proxy = await startTestProxy({ north: { url: broker.url } }, { route: passThroughRoute() });
  });

  after(async () => {
    await proxy.close(200);
    await broker.stop();
  });

  for (const k of CASES) {
    it(`${k.name}: answered in MQTT 3.1, the connection closed in 3.1.1, directly and through the proxy`, async () => {
      const proxyPort = Number(new URL(proxy.url).port);
      for (const [v, expected] of [
        [3, k.answer],
        [4, 'closed'],
      ] as const) {
        assert.equal(await answer(broker.port, v, k.bytes), expected, `mosquitto, MQTT ${v}`);
        assert.equal(await answer(proxyPort, v, k.bytes), expected, `proxy, MQTT ${v}`);
      }
    });
  }
});
