/**
 * QoS 1 through a south gateway, end to end: the gateway's PUBACK for a device's uplink is the
 * north platform's PUBACK, relayed. The north is an aedes broker whose publish authorisation
 * is held until the test releases it (aedes acknowledges a publish only once it is authorised),
 * so the gateway must have no PUBACK while the north holds the message.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import mqtt, { type IPublishPacket, type Packet } from 'mqtt-packet';
import { type AedesServer, startAedes } from '../emulators/aedes-server.js';
import {
  closeAll,
  connectClient,
  gather,
  type MqttClient,
  publish,
  withTimeout,
} from '../helpers/clients.js';
import type { TestProxy } from '../helpers/proxy.js';
import { connectPacket, type RawClient, rawConnect } from '../helpers/raw.js';
import { cbJwt, clientIdFor, connectGateway, publicPem, type TestGateway } from './gateway-south-kit.js';
import { captureLogs, ecKey, startRouteProxy, tempDir, until, writeCredentials } from './kit.js';

const SECRET = 'akzGwSouthQos0a1b2c3d4e5f6a7b';

describe('QoS 1 uplinks through a south gateway are acknowledged by the north', () => {
  const gwKey = ecKey();
  const tmp = tempDir('mdp-gw-south-qos-');
  const clients: MqttClient[] = [];
  /** Authorisations the north holds: releasing one lets aedes store and acknowledge the publish. */
  const held: Array<{ topic: string; payload: string; release(): void }> = [];
  let hold = false;
  let north: AedesServer;
  let proxy: TestProxy;
  let gw: TestGateway;

  before(async () => {
    north = await startAedes({
      authenticate: (_client, username, password, done) =>
        done(null, username === 'conn-1' && password?.toString() === SECRET),
      authorizePublish: (_client, packet, cb) => {
        const entry = { topic: packet.topic, payload: packet.payload.toString(), release: () => cb(null) };
        if (hold) held.push(entry);
        else cb(null);
      },
    });
    const creds = writeCredentials(tmp.dir, [
      { south: { deviceId: 'gw-1', publicKey: publicPem(gwKey.publicKey) }, north: {} },
      { south: { deviceId: 'dev-1', gateway: 'gw-1' }, north: { connectorId: 'conn-1', secret: SECRET } },
    ]);
    proxy = await startRouteProxy('clearblade-gateway-to-akenza', north.url, creds);
    gw = await connectGateway(proxy.url, 'gw-1', gwKey.privateKey);
    clients.push(gw.client);
    await publish(gw.client, '/devices/dev-1/attach', '', { qos: 1 });
  });

  after(async () => {
    for (const h of held.splice(0)) h.release();
    await closeAll(clients);
    await proxy?.close(500);
    await north?.stop();
    tmp.cleanup();
  });

  it('holds the PUBACK while the north holds the message, and relays it once the north acknowledges', async () => {
    hold = true;
    const pubacks: number[] = [];
    gw.client.on('packetreceive', (p) => {
      if (p.cmd === 'puback') pubacks.push(p.messageId ?? 0);
    });
    const done = publish(gw.client, '/devices/dev-1/events', '{"seq":1}', { qos: 1 }, 10_000);
    await until(() => held.length === 1, 5000, 'the uplink to reach the north');
    assert.equal(held[0]?.topic, `/up/${SECRET}/id/dev-1`);
    assert.deepEqual(JSON.parse(held[0]?.payload ?? ''), { seq: 1 });
    // The message is at the north, unacknowledged: nothing comes back to the gateway meanwhile.
    await gather(gw.client, '#', 300);
    assert.deepEqual(pubacks, [], 'no PUBACK before the north acknowledged');
    hold = false;
    held.shift()?.release();
    await withTimeout(done, 5000, 'the PUBACK after the north acknowledged');
    assert.equal(pubacks.length, 1);
  });

  it("answers a QoS 2 uplink's PUBREC once the north acknowledged it, and completes the handshake", async () => {
    hold = true;
    const seen: string[] = [];
    gw.client.on('packetreceive', (p) => {
      if (p.cmd === 'pubrec' || p.cmd === 'pubcomp' || p.cmd === 'puback') seen.push(p.cmd);
    });
    const done = publish(gw.client, '/devices/dev-1/events', '{"seq":2}', { qos: 2 }, 10_000);
    await until(() => held.length === 1, 5000, 'the uplink to reach the north');
    assert.deepEqual(JSON.parse(held[0]?.payload ?? ''), { seq: 2 });
    await gather(gw.client, '#', 300);
    assert.deepEqual(seen, [], 'no PUBREC before the north acknowledged');
    hold = false;
    held.shift()?.release();
    // MQTT.js resolves a QoS 2 publish only after PUBREC, its PUBREL and the PUBCOMP.
    await withTimeout(done, 5000, 'the QoS 2 handshake after the north acknowledged');
    assert.deepEqual(seen, ['pubrec', 'pubcomp']);
  });
});

describe("a south gateway's in-flight window for QoS 1 downlinks (limits.gatewayInflight)", () => {
  const SECRET_2 = 'akzGwSouthQos9f8e7d6c5b4a3f2e1d';
  const WINDOW = 3;
  const gwKey = ecKey();
  const tmp = tempDir('mdp-gw-south-window-');
  const logs = captureLogs();
  const clients: MqttClient[] = [];
  let north: AedesServer;
  let proxy: TestProxy;
  let platform: MqttClient;
  let gw: RawClient;

  /** Every PUBLISH the gateway has received so far. */
  const downlinks = (): IPublishPacket[] =>
    gw.packets.filter((p): p is IPublishPacket => p.cmd === 'publish');
  const answer = async (cmd: Packet['cmd'], messageId: number): Promise<void> => {
    await until(
      () => gw.packets.some((p) => p.cmd === cmd && p.messageId === messageId),
      5000,
      `${cmd} ${messageId} for the gateway`,
    );
  };

  before(async () => {
    const accounts = new Map([
      ['conn-1', SECRET],
      ['conn-2', SECRET_2],
      ['platform', 'platform-password'],
    ]);
    north = await startAedes({
      authenticate: (_client, username, password, done) =>
        done(null, accounts.get(username ?? '') === password?.toString()),
    });
    const creds = writeCredentials(tmp.dir, [
      { south: { deviceId: 'gw-1', publicKey: publicPem(gwKey.publicKey) }, north: {} },
      { south: { deviceId: 'dev-1', gateway: 'gw-1' }, north: { connectorId: 'conn-1', secret: SECRET } },
      { south: { deviceId: 'dev-2', gateway: 'gw-1' }, north: { connectorId: 'conn-2', secret: SECRET_2 } },
    ]);
    proxy = await startRouteProxy('clearblade-gateway-to-akenza', north.url, creds, {
      logger: logs.logger,
      overrides: { limits: { gatewayInflight: WINDOW } },
    });
    platform = await connectClient(north.url, { username: 'platform', password: 'platform-password' });
    clients.push(platform);
    // A raw gateway: it acknowledges nothing unless the test says so.
    gw = await rawConnect(Number(new URL(proxy.url).port));
    gw.send(
      connectPacket({
        clientId: clientIdFor('gw-1'),
        username: 'unused',
        password: Buffer.from(cbJwt(gwKey.privateKey)),
      }),
    );
    const connack = await gw.nextPacket();
    assert.deepEqual([connack.cmd, connack.cmd === 'connack' && connack.returnCode], ['connack', 0]);
    for (const [i, dev] of ['dev-1', 'dev-2'].entries()) {
      gw.send({
        cmd: 'publish',
        topic: `/devices/${dev}/attach`,
        payload: Buffer.alloc(0),
        qos: 1,
        messageId: i + 1,
        retain: false,
        dup: false,
      });
      await answer('puback', i + 1);
    }
    gw.send({
      cmd: 'subscribe',
      messageId: 10,
      subscriptions: [
        { topic: '/devices/dev-1/config', qos: 1 },
        { topic: '/devices/dev-2/config', qos: 1 },
      ],
    });
    await answer('suback', 10);
  });

  after(async () => {
    gw?.destroy();
    await closeAll(clients);
    await proxy?.close(500);
    await north?.stop();
    tmp.cleanup();
  });

  it('keeps at most that many unacknowledged, sends the rest as PUBACKs free room, in order, none lost', async () => {
    // Seven config pushes, alternating between the two devices' akenza downlink topics.
    const sent: Array<[string, string]> = [];
    for (let seq = 1; seq <= 7; seq++) {
      const [dev, secret] = seq % 2 ? ['dev-1', SECRET] : ['dev-2', SECRET_2];
      sent.push([`/devices/${dev}/config`, `{"seq":${seq}}`]);
      await publish(platform, `/down/${secret}/id/${dev}`, `{"seq":${seq}}`, { qos: 1 });
    }
    await until(() => downlinks().length === WINDOW, 5000, 'the first window of downlinks');
    // The rest wait while the gateway acknowledges nothing.
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(downlinks().length, WINDOW, 'no more than the window before a PUBACK');
    const ids = new Set(downlinks().map((p) => p.messageId));
    assert.equal(ids.size, WINDOW, 'each in-flight downlink has its own packet id');
    const warned = logs.lines().filter((l) => String(l.msg).includes('in-flight window'));
    assert.equal(warned.length, 1, 'the full window is logged once');
    assert.equal(warned[0]?.gateway, 'gw-1');
    // Each PUBACK lets exactly one more through, until all seven are in.
    for (let acked = 0; acked < 7; acked++) {
      const next = downlinks()[acked]!;
      gw.send({ cmd: 'puback', messageId: next.messageId });
      const expected = Math.min(7, WINDOW + acked + 1);
      await until(() => downlinks().length === expected, 5000, `${expected} downlinks`);
    }
    const got = downlinks().map((p) => [p.topic, p.payload.toString()]);
    // Per device, the order the platform sent them in.
    for (const dev of ['dev-1', 'dev-2']) {
      const topic = `/devices/${dev}/config`;
      assert.deepEqual(
        got.filter(([t]) => t === topic),
        sent.filter(([t]) => t === topic),
        `${dev}'s downlinks, in order`,
      );
    }
    assert.equal(logs.text().includes(SECRET), false, 'no secret in the logs');
    assert.equal(logs.text().includes(SECRET_2), false, 'no secret in the logs');
  });

  it('passes a resend of an uplink still in flight on once, and acknowledges it once', async () => {
    const up = gather(platform, `/up/${SECRET_2}/id/dev-2`, 800);
    await new Promise<void>((resolve, reject) =>
      platform.subscribe(`/up/${SECRET_2}/id/dev-2`, { qos: 1 }, (e) => (e ? reject(e) : resolve())),
    );
    const first: IPublishPacket = {
      cmd: 'publish',
      topic: '/devices/dev-2/events',
      payload: Buffer.from('{"once":1}'),
      qos: 1,
      messageId: 30,
      retain: false,
      dup: false,
    };
    // Both in one write: the resend arrives before the north can have acknowledged the first.
    gw.write(Buffer.concat([mqtt.generate(first), mqtt.generate({ ...first, dup: true })]));
    await answer('puback', 30);
    const got = await up;
    assert.deepEqual(
      got.map((m) => m.payload.toString()),
      ['{"once":1}'],
      'the north got one copy',
    );
    assert.equal(gw.packets.filter((p) => p.cmd === 'puback' && p.messageId === 30).length, 1, 'one PUBACK');
  });

  it('answers a QoS 2 resend after PUBREC with PUBREC again, without a second delivery', async () => {
    const up = gather(platform, `/up/${SECRET_2}/id/dev-2`, 800);
    const msg: IPublishPacket = {
      cmd: 'publish',
      topic: '/devices/dev-2/events',
      payload: Buffer.from('{"exactly":1}'),
      qos: 2,
      messageId: 31,
      retain: false,
      dup: false,
    };
    gw.send(msg);
    await answer('pubrec', 31);
    gw.send({ ...msg, dup: true });
    await until(
      () => gw.packets.filter((p) => p.cmd === 'pubrec' && p.messageId === 31).length === 2,
      5000,
      'a second PUBREC',
    );
    gw.send({ cmd: 'pubrel', messageId: 31 });
    await answer('pubcomp', 31);
    assert.deepEqual(
      (await up).map((m) => m.payload.toString()),
      ['{"exactly":1}'],
      'the north got one copy',
    );
  });

  it("a detach frees the device's place in the window: another device's waiting downlinks go out", async () => {
    const before = downlinks().length;
    for (let seq = 1; seq <= 3; seq++) {
      await publish(platform, `/down/${SECRET}/id/dev-1`, `{"fill":${seq}}`, { qos: 1 });
    }
    await until(() => downlinks().length === before + WINDOW, 5000, "dev-1's downlinks filling the window");
    await publish(platform, `/down/${SECRET_2}/id/dev-2`, '{"waiting":1}', { qos: 1 });
    await publish(platform, `/down/${SECRET_2}/id/dev-2`, '{"waiting":2}', { qos: 1 });
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(downlinks().length, before + WINDOW, "dev-2's downlinks wait behind the full window");
    gw.send({
      cmd: 'publish',
      topic: '/devices/dev-1/detach',
      payload: Buffer.alloc(0),
      qos: 1,
      messageId: 20,
      retain: false,
      dup: false,
    });
    await answer('puback', 20);
    await until(() => downlinks().length === before + WINDOW + 2, 5000, "dev-2's two downlinks");
    assert.deepEqual(
      downlinks()
        .slice(before + WINDOW)
        .map((p) => [p.topic, p.payload.toString()]),
      [
        ['/devices/dev-2/config', '{"waiting":1}'],
        ['/devices/dev-2/config', '{"waiting":2}'],
      ],
    );
  });
});
