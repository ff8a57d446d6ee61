/**
 * The akenza emulator proves its own rules with real clients (MQTT.js and mosquitto_pub).
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { signJwt } from '../../src/auth/jwt.js';
import { type AkenzaPlatform, startAkenzaPlatform } from '../emulators/akenza-platform.js';
import {
  closeAll,
  connectClient,
  gather,
  type MqttClient,
  mosquittoPub,
  nextMessage,
  publish,
  subscribe,
  tryConnect,
} from '../helpers/clients.js';

const keyA = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
const keyB = generateKeyPairSync('rsa', { modulusLength: 2048 });
const now = (): number => Math.floor(Date.now() / 1000);
const SECRET = 'Sx7uplinkSecret0000abcd';

describe('akenza emulator', () => {
  let ak: AkenzaPlatform;
  const clients: MqttClient[] = [];
  const device = async (id: string, key: typeof keyA.privateKey): Promise<MqttClient> => {
    const c = await connectClient(ak.url, {
      clientId: id,
      username: 'unused',
      password: signJwt({ iat: now(), exp: now() + 600 }, key),
    });
    clients.push(c);
    return c;
  };
  before(async () => {
    ak = await startAkenzaPlatform({
      devices: [
        { id: 'dev-a', publicKey: keyA.publicKey },
        { id: 'dev-b', publicKey: keyB.publicKey },
      ],
      connectors: [{ id: 'connector-1', secret: SECRET }],
    });
  });
  after(async () => {
    await closeAll(clients);
    await ak?.stop();
  });

  it('accepts a device JWT (ES256 and RS256); refuses expired, foreign-key and unknown-device tokens with CONNACK 5', async () => {
    assert.ok((await device('dev-a', keyA.privateKey)).connected);
    assert.ok((await device('dev-b', keyB.privateKey)).connected);
    const expired = signJwt({ iat: now() - 900, exp: now() - 1 }, keyA.privateKey);
    for (const [what, clientId, password] of [
      ['expired', 'dev-a', expired],
      ['key of another device', 'dev-a', signJwt({ exp: now() + 600 }, keyB.privateKey)],
      ['unknown device', 'dev-x', signJwt({ exp: now() + 600 }, keyA.privateKey)],
    ] as const) {
      const r = await tryConnect(ak.url, { clientId, username: 'u', password });
      assert.equal(r.connack?.returnCode, 5, what);
    }
    assert.ok(ak.refusals.some((r) => r.reason === 'jwt_expired'));
    await closeAll(clients.splice(0));
  });

  it('records uplinks with sub-topics joined by "_"; drops publishes to another device', async () => {
    const a = await device('dev-a', keyA.privateKey);
    await publish(a, '/up/device/id/dev-a', '{"foo":"bar"}', { qos: 1 });
    await publish(a, '/up/device/id/dev-a/alerts/critical', '{"t":99}', { qos: 1 });
    await publish(a, '/up/device/id/dev-b', '{"spoof":true}', { qos: 1 });
    assert.deepEqual(ak.uplinks.slice(-2), [
      { deviceId: 'dev-a', scheme: 'jwt', topic: 'default', payload: '{"foo":"bar"}' },
      { deviceId: 'dev-a', scheme: 'jwt', topic: 'alerts_critical', payload: '{"t":99}' },
    ]);
    assert.ok(!ak.uplinks.some((u) => u.deviceId === 'dev-b'));
    await closeAll(clients.splice(0));
  });

  it('delivers downlinks to the device subscription only; foreign subscriptions get 0x80', async () => {
    const a = await device('dev-a', keyA.privateKey);
    const b = await device('dev-b', keyB.privateKey);
    await subscribe(a, '/down/device/id/dev-a/#');
    await subscribe(b, '/down/device/id/dev-b/#');
    const granted = await new Promise<number[]>((resolve) => {
      b.on('packetreceive', (p) => {
        if (p.cmd === 'suback' && (p.granted as number[])[0] === 128) resolve(p.granted as number[]);
      });
      b.subscribe('/down/device/id/dev-a/#', () => undefined);
    });
    assert.deepEqual(granted, [128]);
    const bSees = gather(b, '#', 400);
    const got = nextMessage(a, '/down/device/id/dev-a/#');
    ak.downlink('dev-a', 'myTopic', '{"led":"on"}');
    const m = await got;
    assert.equal(m.topic, '/down/device/id/dev-a/myTopic');
    assert.equal(m.payload.toString(), '{"led":"on"}');
    assert.deepEqual(await bSees, []);
    await closeAll(clients.splice(0));
  });

  it('uplink-secret scheme: mosquitto_pub with connector id and secret, downlink on /down/{secret}/id/{deviceId}', async () => {
    const res = await mosquittoPub({
      url: ak.url,
      topic: `/up/${SECRET}/id/dev-s1/status`,
      message: '{"ok":1}',
      qos: 1,
      extra: ['-u', 'connector-1', '-P', SECRET, '-i', 'pub-1'],
    });
    assert.equal(res.code, 0, res.stderr);
    assert.deepEqual(ak.uplinks.at(-1), {
      deviceId: 'dev-s1',
      scheme: 'secret',
      topic: 'status',
      payload: '{"ok":1}',
    });
    const bad = await tryConnect(ak.url, {
      clientId: 'x',
      username: 'connector-1',
      password: 'wrong-secret',
    });
    assert.equal(bad.connack?.returnCode, 5);
    const sub = await connectClient(ak.url, { clientId: 'sub-1', username: 'connector-1', password: SECRET });
    clients.push(sub);
    await subscribe(sub, `/down/${SECRET}/id/dev-s1/#`);
    const got = nextMessage(sub, `/down/${SECRET}/id/dev-s1/#`);
    ak.downlink('dev-s1', 'myTopic', 'hello', { connectorId: 'connector-1' });
    assert.equal((await got).topic, `/down/${SECRET}/id/dev-s1/myTopic`);
    for (const r of ak.refusals) assert.doesNotMatch(JSON.stringify(r), new RegExp(SECRET));
    await closeAll(clients.splice(0));
  });
});
