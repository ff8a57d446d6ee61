/**
 * CONNECT corners where the proxy in pass-through must answer as mosquitto does (cases of
 * mosquitto's own broker suite, test/conformance): the same raw bytes a client sends go to
 * mosquitto directly and through the proxy in front of another mosquitto, and the answers are
 * compared. Malformed CONNECT flags are closed without a CONNACK; an MQTT 5 empty client id
 * with clean start 0 gets its Assigned Client Identifier; will and PUBLISH user properties
 * arrive in the order they were sent.
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Framer } from '../../src/codec/framer.js';
import { runPaho } from '../helpers/clients.js';
import { type MosquittoBroker, startMosquitto } from '../helpers/mosquitto.js';
import { startTestProxy, type TestProxy } from '../helpers/proxy.js';

const str = (s: string): Buffer => {
  const b = Buffer.from(s, 'utf8');
  return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b]);
};
const user = (k: string, v: string): Buffer => Buffer.concat([Buffer.from([0x26]), str(k), str(v)]);
const block = (...entries: Buffer[]): Buffer => {
  const body = Buffer.concat(entries);
  assert.ok(body.length < 128);
  return Buffer.concat([Buffer.from([body.length]), body]);
};
const frame = (type: number, ...parts: Buffer[]): Buffer => {
  const b = Buffer.concat(parts);
  assert.ok(b.length < 16384);
  const len = b.length < 128 ? [b.length] : [(b.length % 128) | 0x80, b.length >> 7];
  return Buffer.concat([Buffer.from([type, ...len]), b]);
};
/** A CONNECT with exactly the given flags byte; `tail` follows the client id (will, username, ...). */
const connectBytes = (version: 4 | 5, flags: number, clientId: string, ...tail: Buffer[]): Buffer =>
  frame(
    0x10,
    str('MQTT'),
    Buffer.from([version, flags, 0, 10]),
    version === 5 ? block() : Buffer.alloc(0),
    str(clientId),
    ...tail,
  );

/** A raw connection: bytes out, whole frames back, and whether the peer closed. */
interface Raw {
  frames: Buffer[];
  write(b: Buffer): void;
  /** Waits for `n` frames in all, or for the close; bounded by `timeoutMs`. */
  settle(n: number, timeoutMs?: number): Promise<{ frames: Buffer[]; closed: boolean }>;
  destroy(): void;
}

function raw(port: number): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const sock: Socket = connect({ host: '127.0.0.1', port });
    const frames: Buffer[] = [];
    let closed = false;
    const framer = new Framer(1 << 20, { onFrame: (f) => frames.push(Buffer.from(f)) });
    sock.on('data', (d: Buffer) => framer.push(d));
    sock.on('close', () => {
      closed = true;
    });
    sock.on('error', () => undefined);
    sock.once('connect', () =>
      resolve({
        frames,
        write: (b) => sock.write(b),
        async settle(n, timeoutMs = 3000) {
          const end = Date.now() + timeoutMs;
          while (!closed && frames.length < n && Date.now() < end)
            await new Promise((r) => setTimeout(r, 10));
          return { frames: [...frames], closed };
        },
        destroy: () => sock.destroy(),
      }),
    );
    sock.once('error', reject);
  });
}

describe('core: CONNECT answers and property order as mosquitto gives them', () => {
  let direct: MosquittoBroker;
  let north: MosquittoBroker;
  let proxy: TestProxy;
  let proxyPort: number;
  const open: Raw[] = [];

  before(async () => {
    direct = await startMosquitto();
    north = await startMosquitto();
    proxy = await startTestProxy({ north: { url: north.url } });
    proxyPort = Number(new URL(proxy.url).port);
  });
  after(async () => {
    for (const r of open) r.destroy();
    await proxy?.close(500);
    await north?.stop();
    await direct?.stop();
  });

  const client = async (port: number): Promise<Raw> => {
    const r = await raw(port);
    open.push(r);
    return r;
  };
  /** The frames and close seen after sending `bytes`, from mosquitto and through the proxy. */
  const both = async (bytes: Buffer) => {
    const out = [];
    for (const port of [direct.port, proxyPort]) {
      const r = await client(port);
      r.write(bytes);
      out.push(await r.settle(1));
    }
    return { direct: out[0]!, proxied: out[1]! };
  };

  for (const version of [4, 5] as const) {
    it(`a username without the username flag: closed without a CONNACK (MQTT ${version === 4 ? '3.1.1' : '5'})`, async () => {
      // The suite's 01-connect-uname-no-flag.py: username bytes present, flags byte 0x02.
      const { direct: d, proxied: p } = await both(connectBytes(version, 0x02, 'uname-no-flag', str('user')));
      assert.deepEqual(d, { frames: [], closed: true });
      assert.deepEqual(p, { frames: [], closed: true });
    });
  }

  it('the same CONNECT with its username flag is answered (CONNACK 0) by both', async () => {
    const { direct: d, proxied: p } = await both(connectBytes(4, 0x82, 'uname-flag', str('user')));
    assert.deepEqual(d.frames, [Buffer.from([0x20, 2, 0, 0])]);
    assert.deepEqual(p.frames, [Buffer.from([0x20, 2, 0, 0])]);
  });

  it('MQTT 3.1.1 password without username: closed without a CONNACK', async () => {
    const { direct: d, proxied: p } = await both(connectBytes(4, 0x42, 'pw-no-user', str('pw')));
    assert.deepEqual(d, { frames: [], closed: true });
    assert.deepEqual(p, { frames: [], closed: true });
  });

  for (const clean of [true, false]) {
    it(`MQTT 5 empty client id, clean start ${clean ? 1 : 0}: CONNACK with an Assigned Client Identifier`, async () => {
      // The suite's 12-prop-assigned-client-identifier.py compares the first 12 bytes.
      const { direct: d, proxied: p } = await both(connectBytes(5, clean ? 0x02 : 0x00, ''));
      const connack = p.frames[0];
      assert.ok(connack, `a CONNACK through the proxy (closed: ${p.closed})`);
      assert.equal(p.closed, false);
      assert.deepEqual(connack.subarray(0, 12), d.frames[0]?.subarray(0, 12));
      assert.equal(connack.length, d.frames[0]?.length);
      assert.match(connack.toString('latin1'), /auto-[0-9A-F-]{36}/);
    });
  }

  it('MQTT 3.1.1 empty client id with clean session 0: CONNACK 2, as mosquitto', async () => {
    const { direct: d, proxied: p } = await both(connectBytes(4, 0x00, ''));
    assert.deepEqual(d.frames, [Buffer.from([0x20, 2, 0, 2])]);
    assert.deepEqual(p.frames, [Buffer.from([0x20, 2, 0, 2])]);
  });

  it('will properties arrive in the order they were sent (user properties around others)', async () => {
    // The suite's 07-will-properties.py: mosquitto keeps the order but drops the will delay.
    const u32 = Buffer.from([0, 0, 0, 0]);
    const sent = [
      user('key1', 'value1'),
      Buffer.concat([Buffer.from([0x08]), str('response/topic')]),
      Buffer.concat([Buffer.from([0x09]), str('data')]),
      Buffer.concat([Buffer.from([0x18]), u32]),
      Buffer.from([0x01, 1]),
      Buffer.concat([Buffer.from([0x03]), str('application/test')]),
      user('key2', 'value2'),
    ];
    const expected = block(...sent.filter((e) => e[0] !== 0x18));
    const sub = await client(proxyPort);
    sub.write(connectBytes(5, 0x02, 'will-helper'));
    sub.write(frame(0x82, Buffer.from([0, 1]), block(), str('will/test'), Buffer.from([0])));
    const ready = await sub.settle(2);
    assert.equal(ready.frames[1]?.[0], 0x90, 'SUBACK');
    const willClient = await client(proxyPort);
    willClient.write(
      connectBytes(5, 0x06, 'will-test', block(...sent), str('will/test'), str('will payload')),
    );
    assert.equal((await willClient.settle(1)).frames[0]?.[0], 0x20, 'CONNACK');
    willClient.destroy();
    const got = await sub.settle(3, 5000);
    const publish = got.frames[2];
    assert.ok(publish, 'the will message arrived');
    const expectedPublish = frame(0x30, str('will/test'), expected, Buffer.from('will payload'));
    assert.equal(publish.toString('hex'), expectedPublish.toString('hex'));
  });

  it('PUBLISH user properties with a repeated key keep their order (paho MQTT 5, a b a)', async () => {
    const r = await runPaho(
      `
import json, time
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes
port = int(sys.argv[1])
got = []
def on_message(c, u, m):
    got.append(list(getattr(m.properties, "UserProperty", [])))
sub = make_client("order-sub", mqtt.MQTTv5)
sub.on_message = on_message
sub.connect("127.0.0.1", port)
sub.loop_start()
subscribed = []
sub.on_subscribe = lambda c, u, mid, granted, props: subscribed.append(mid)
sub.subscribe("order/t", qos=1)
for _ in range(100):
    if subscribed: break
    time.sleep(0.05)
pub = make_client("order-pub", mqtt.MQTTv5)
pub.connect("127.0.0.1", port)
pub.loop_start()
props = Properties(PacketTypes.PUBLISH)
props.UserProperty = [("a", "1"), ("b", "2"), ("a", "3")]
pub.publish("order/t", "x", qos=1, properties=props).wait_for_publish(5)
for _ in range(100):
    if got: break
    time.sleep(0.05)
print(json.dumps(got))
pub.loop_stop(); sub.loop_stop()
`,
      [String(proxyPort)],
    );
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout.trim()), [
      [
        ['a', '1'],
        ['b', '2'],
        ['a', '3'],
      ],
    ]);
  });
});
