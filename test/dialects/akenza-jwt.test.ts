/**
 * Connector devices onto akenza with device credentials (route connector-to-akenza, records
 * holding each device's private key): the proxy signs a JWT per device (RS256 for an RSA key,
 * ES256 for an EC P-256 key) and caches it. The aedes akenza emulator verifies every JWT with
 * the device's public key and refuses expired ones.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type AkenzaPlatform, startAkenzaPlatform } from '../emulators/akenza-platform.js';
import {
  closeAll,
  closeClient,
  connectClient,
  type MqttClient,
  nextMessage,
  publish,
  tryConnect,
} from '../helpers/clients.js';
import type { TestProxy } from '../helpers/proxy.js';
import {
  captureLogs,
  ecKey,
  type KeyPair,
  metricValue,
  rsaKey,
  scrape,
  startRouteProxy,
  tempDir,
  until,
  writeCredentials,
} from './kit.js';

const STORM = 1000;
const BATCH = 100;
const tokenOf = (id: string): string => `tok-${id}-00000000000000000000`;
// A record whose key cannot sign: not PEM (a value pasted wrongly into an environment variable).
const BAD_KEY_ID = 'bad-key-dev';
const BAD_KEY = 'MIIEvQIBADANBgkqhkiG9w0BAQEFAASC-not-a-pem-key';

describe('Connector → akenza, device credentials (a JWT per device)', () => {
  let akenza: AkenzaPlatform;
  let proxy: TestProxy;
  const tmp = tempDir();
  const logs = captureLogs();
  const keys = new Map<string, KeyPair>([
    ['rsa-dev', rsaKey()],
    ['ec-dev', ecKey()],
  ]);
  for (let i = 0; i < STORM; i++) keys.set(`storm-${i}`, ecKey());
  const clients: MqttClient[] = [];
  const device = async (id: string): Promise<MqttClient> => {
    const c = await connectClient(proxy.url, { clientId: id, username: id, password: tokenOf(id) });
    clients.push(c);
    return c;
  };

  before(async () => {
    akenza = await startAkenzaPlatform({
      devices: [...keys].map(([id, k]) => ({ id, publicKey: k.publicKey })),
    });
    const creds = writeCredentials(tmp.dir, [
      ...[...keys].map(([id, k]) => ({
        south: { deviceId: id, token: tokenOf(id) },
        north: { privateKey: k.pem },
      })),
      { south: { deviceId: BAD_KEY_ID, token: tokenOf(BAD_KEY_ID) }, north: { privateKey: BAD_KEY } },
    ]);
    proxy = await startRouteProxy('connector-to-akenza', akenza.url, creds, { logger: logs.logger });
  });

  after(async () => {
    await closeAll(clients);
    await proxy?.close(500);
    await akenza?.stop();
    tmp.cleanup();
  });

  it('signs RS256 for an RSA key and ES256 for an EC key; the platform verifies both', async () => {
    const r = await device('rsa-dev');
    const e = await device('ec-dev');
    await publish(r, '$resource/temp', '20', { qos: 1 });
    await publish(e, '$resource/temp', '21', { qos: 1 });
    await akenza.waitFor(() => akenza.uplinks.length >= 2);
    const byDev = new Map(akenza.uplinks.map((u) => [u.deviceId, u]));
    assert.deepEqual(byDev.get('rsa-dev'), {
      deviceId: 'rsa-dev',
      scheme: 'jwt',
      topic: 'default',
      payload: '{"temp":20}',
    });
    assert.equal(byDev.get('ec-dev')?.payload, '{"temp":21}');
    assert.equal(byDev.get('ec-dev')?.scheme, 'jwt');
    const text = await scrape(proxy);
    assert.equal(metricValue(text, 'mqtt_proxy_jwt_signings_total', 'alg="RS256",result="signed"'), 1);
    assert.equal(metricValue(text, 'mqtt_proxy_jwt_signings_total', 'alg="ES256",result="signed"'), 1);
    assert.deepEqual(akenza.refusals, []);
  });

  it('delivers /down/device/id/{deviceId}/{topic} to that device only', async () => {
    const [r, e] = clients as [MqttClient, MqttClient];
    const got = nextMessage(e, '$resource/setpoint', 5000);
    const stray = nextMessage(r, '#', 1000).then(
      () => 'received',
      () => 'nothing',
    );
    akenza.downlink('ec-dev', 'settings', '{"setpoint":18}');
    assert.equal((await got).payload.toString(), '18');
    assert.equal(await stray, 'nothing');
  });

  it(`a reconnect storm of ${STORM} devices reuses the cached signatures`, async () => {
    const ids = [...keys.keys()].filter((id) => id.startsWith('storm-'));
    const round = async (): Promise<MqttClient[]> => {
      const out: MqttClient[] = [];
      for (let i = 0; i < ids.length; i += BATCH) {
        out.push(...(await Promise.all(ids.slice(i, i + BATCH).map((id) => device(id)))));
      }
      return out;
    };
    const first = await round();
    const afterFirst = await scrape(proxy);
    const signed = metricValue(afterFirst, 'mqtt_proxy_jwt_signings_total', 'alg="ES256",result="signed"');
    const cached = metricValue(afterFirst, 'mqtt_proxy_jwt_signings_total', 'alg="ES256",result="cached"');
    assert.equal(signed, 1 + STORM, 'one signature per device');
    await Promise.all(first.map((c) => closeClient(c)));
    await until(() => proxy.connectionCount() === 2, 10_000, 'the storm devices gone');
    const second = await round();
    assert.equal(second.length, STORM);
    const text = await scrape(proxy);
    assert.equal(
      metricValue(text, 'mqtt_proxy_jwt_signings_total', 'alg="ES256",result="signed"'),
      signed,
      'no new signature on reconnect',
    );
    assert.equal(
      metricValue(text, 'mqtt_proxy_jwt_signings_total', 'alg="ES256",result="cached"'),
      cached + STORM,
    );
    // Every reconnected device is really online at akenza with its cached JWT.
    const last = second[second.length - 1] as MqttClient;
    await publish(last, '$resource/n', '1', { qos: 1 });
    await akenza.waitFor(() => akenza.uplinks.some((u) => u.deviceId === ids[ids.length - 1]));
    assert.deepEqual(akenza.refusals, []);
    await Promise.all(second.map((c) => closeClient(c)));
  });

  it('a key that cannot sign refuses its device (server unavailable) and is logged once as a warning, naming the identity, not the key', async () => {
    const warnings = () =>
      logs.lines().filter((l) => String(l['msg']).startsWith('north JWT cannot be signed'));
    for (let i = 0; i < 2; i++) {
      const r = await tryConnect(proxy.url, {
        clientId: BAD_KEY_ID,
        username: BAD_KEY_ID,
        password: tokenOf(BAD_KEY_ID),
      });
      assert.equal(r.connack?.returnCode, 3, 'CONNACK 3: server unavailable');
      await closeClient(r.client);
    }
    const w = warnings();
    assert.equal(w.length, 1, 'one warning for the identity, not one per CONNECT');
    assert.equal(w[0]?.['level'], 40);
    assert.equal(w[0]?.['identity'], BAD_KEY_ID);
    assert.equal(typeof w[0]?.['err'], 'string');
    assert.equal(logs.text().includes(BAD_KEY), false, 'the key is not logged');
  });

  it('never logs a JWT or a private key', () => {
    const text = logs.text();
    assert.ok(text.length > 0);
    assert.equal(/eyJ[A-Za-z0-9_-]{10,}\./.test(text), false, 'no JWT in the logs');
    assert.equal(text.includes('PRIVATE KEY'), false, 'no key in the logs');
  });
});
