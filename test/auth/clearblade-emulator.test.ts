/**
 * The ClearBlade IoT Core emulator proves its own rules with real MQTT.js clients.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { signJwt } from '../../src/auth/jwt.js';
import { type ClearBladePlatform, startClearBladePlatform } from '../emulators/clearblade-platform.js';
import {
  closeAll,
  connectClient,
  gather,
  type MqttClient,
  nextMessage,
  publish,
  subscribe,
  tryConnect,
  waitClosed,
} from '../helpers/clients.js';

const gwKey = generateKeyPairSync('rsa', { modulusLength: 2048 });
const gw2Key = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
const devKey = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
const plainKey = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
const PROJECT = 'my-project-123';
const now = (): number => Math.floor(Date.now() / 1000);
const jwt = (key: typeof gwKey.privateKey, ttl = 1200, aud = PROJECT): string =>
  signJwt({ iat: now(), exp: now() + ttl, aud }, key);

describe('ClearBlade IoT Core emulator', () => {
  let cb: ClearBladePlatform;
  const clients: MqttClient[] = [];
  const gateway = async (id = 'gw-1', key = gwKey.privateKey, ttl = 1200): Promise<MqttClient> => {
    const c = await connectClient(cb.url, {
      clientId: cb.clientIdFor(id),
      username: 'unused',
      password: jwt(key, ttl),
    });
    clients.push(c);
    return c;
  };
  before(async () => {
    cb = await startClearBladePlatform({
      project: PROJECT,
      registry: 'reg-1',
      gateways: [
        { id: 'gw-1', publicKey: gwKey.publicKey },
        { id: 'gw-2', publicKey: gw2Key.publicKey },
      ],
      devices: [
        { id: 'bound-dev', boundTo: ['gw-1'] },
        { id: 'jwt-dev', publicKey: devKey.publicKey },
        { id: 'unbound-dev' },
        { id: 'plain-dev', publicKey: plainKey.publicKey },
      ],
    });
  });
  after(async () => {
    await closeAll(clients);
    await cb?.stop();
  });

  it('accepts a gateway JWT (RS256 and ES256) and refuses expired, wrong-audience, wrong-key and bad client ids', async () => {
    assert.ok((await gateway('gw-1', gwKey.privateKey)).connected);
    assert.ok((await gateway('gw-2', gw2Key.privateKey)).connected);
    const id = cb.clientIdFor('gw-1');
    const expired = signJwt({ iat: now() - 3600, exp: now() - 10, aud: PROJECT }, gwKey.privateKey);
    const cases: Array<[string, string, string, number]> = [
      ['expired', id, expired, 5],
      ['audience', id, jwt(gwKey.privateKey, 600, 'other-project'), 5],
      ['wrong key', id, jwt(gw2Key.privateKey), 5],
      ['not a jwt', id, 'hello', 5],
      ['bad client id', 'gw-1', jwt(gwKey.privateKey), 2],
    ];
    for (const [what, clientId, password, code] of cases) {
      const r = await tryConnect(cb.url, { clientId, username: 'unused', password });
      assert.equal(r.connack?.returnCode, code, what);
    }
    assert.ok(cb.refusals.some((r) => r.reason === 'jwt_expired'));
    await closeAll(clients.splice(0));
  });

  it('attaches a bound device and a device with its own JWT; refuses others with an error and no PUBACK', async () => {
    const gw = await gateway();
    await subscribe(gw, '/devices/gw-1/errors');
    assert.ok(await publish(gw, '/devices/bound-dev/attach', '', { qos: 1 }), 'PUBACK for a bound device');
    const devJwt = signJwt({ iat: now(), exp: now() + 600, aud: PROJECT }, devKey.privateKey);
    await publish(gw, '/devices/jwt-dev/attach', JSON.stringify({ authorization: devJwt }), { qos: 1 });
    await publish(gw, '/devices/bound-dev/attach', '{}', { qos: 1 });
    assert.deepEqual(cb.attached('gw-1'), ['bound-dev', 'jwt-dev']);

    const err = nextMessage(gw, '/devices/gw-1/errors');
    let acked = false;
    gw.publish('/devices/unbound-dev/attach', '', { qos: 1 }, () => {
      acked = true;
    });
    const body = JSON.parse((await err).payload.toString()) as { error_type: string; device_id: string };
    assert.equal(body.error_type, 'GATEWAY_ATTACHMENT_ERROR');
    assert.equal(body.device_id, 'unbound-dev');
    const badJwt = signJwt({ iat: now(), exp: now() + 600, aud: PROJECT }, plainKey.privateKey);
    const err2 = nextMessage(gw, '/devices/gw-1/errors');
    gw.publish('/devices/jwt-dev/attach', JSON.stringify({ authorization: badJwt }), { qos: 1 });
    assert.equal(
      (JSON.parse((await err2).payload.toString()) as { error_type: string }).error_type,
      'GATEWAY_ATTACHMENT_ERROR',
    );
    await publish(gw, '/devices/bound-dev/state', 'ping', { qos: 1 });
    assert.equal(acked, false, 'a refused attach is not acknowledged');
    assert.deepEqual(cb.attached('gw-1'), ['bound-dev', 'jwt-dev']);

    assert.ok(
      await publish(gw, '/devices/never-attached/detach', '', { qos: 1 }),
      'detach of a stranger: PUBACK',
    );
    await publish(gw, '/devices/jwt-dev/detach', '', { qos: 1 });
    assert.deepEqual(cb.attached('gw-1'), ['bound-dev']);
    await closeAll(clients.splice(0));
    await cb.waitFor(() => !cb.online('gw-1'), 3000, 'gw-1 offline');
    assert.deepEqual(cb.attached('gw-1'), [], 'a disconnect detaches everything');
  });

  it('records telemetry and state of attached devices; unattached traffic gets GATEWAY_DEVICE_NOT_FOUND', async () => {
    const gw = await gateway();
    await subscribe(gw, '/devices/gw-1/errors');
    await publish(gw, '/devices/bound-dev/attach', '', { qos: 1 });
    await publish(gw, '/devices/bound-dev/events', '{"t":21}', { qos: 1 });
    await publish(gw, '/devices/bound-dev/events/alerts/critical', 'hot', { qos: 1 });
    await publish(gw, '/devices/bound-dev/state', '{"on":true}', { qos: 1 });
    await publish(gw, '/devices/gw-1/events', 'gateway itself', { qos: 0 });
    assert.deepEqual(cb.telemetry('bound-dev').slice(-2), [
      { subfolder: undefined, payload: '{"t":21}', via: 'gw-1' },
      { subfolder: 'alerts/critical', payload: 'hot', via: 'gw-1' },
    ]);
    assert.deepEqual(cb.states('bound-dev').at(-1), '{"on":true}');
    const err = nextMessage(gw, '/devices/gw-1/errors');
    gw.publish('/devices/unbound-dev/events', 'x', { qos: 1 });
    const body = JSON.parse((await err).payload.toString()) as Record<string, unknown>;
    assert.equal(body.error_type, 'GATEWAY_DEVICE_NOT_FOUND');
    assert.equal(body.device_id, 'unbound-dev');
    assert.equal(body.topic, '/devices/unbound-dev/events');
    assert.equal(cb.telemetry('unbound-dev').length, 0);
    await closeAll(clients.splice(0));
  });

  it('sends config (also on SUBSCRIBE) and commands only to the gateway that has the device attached', async () => {
    cb.sendConfig('bound-dev', 'config-v1');
    const gw = await gateway();
    const other = await gateway('gw-2', gw2Key.privateKey);
    await publish(gw, '/devices/bound-dev/attach', '', { qos: 1 });
    const first = nextMessage(gw, '/devices/bound-dev/config');
    await subscribe(gw, '/devices/bound-dev/config', { qos: 1 });
    assert.equal((await first).payload.toString(), 'config-v1');
    await subscribe(gw, '/devices/bound-dev/commands/#', { qos: 0 });
    const refused = await new Promise<number[]>((resolve) => {
      other.on('packetreceive', (p) => {
        if (p.cmd === 'suback') resolve(p.granted as number[]);
      });
      other.subscribe('/devices/bound-dev/commands/#', () => undefined);
    });
    assert.deepEqual(refused, [128], 'a gateway cannot subscribe for a device it has not attached');
    const otherSees = gather(other, '#', 400);
    const cfg = nextMessage(gw, '/devices/bound-dev/config');
    cb.sendConfig('bound-dev', 'config-v2');
    assert.equal((await cfg).payload.toString(), 'config-v2');
    assert.equal((await cfg).packet.qos, 1);
    const cmd = nextMessage(gw, '/devices/bound-dev/commands/#');
    assert.equal(cb.sendCommand('bound-dev', 'reboot', 'system'), true);
    const got = await cmd;
    assert.equal(got.topic, '/devices/bound-dev/commands/system');
    assert.equal(got.payload.toString(), 'reboot');
    assert.deepEqual(await otherSees, []);
    assert.equal(cb.sendCommand('unbound-dev', 'x'), false);
    await closeAll(clients.splice(0));
  });

  it('closes the gateway connection when its JWT expires, and on expire()', async () => {
    const short = await gateway('gw-1', gwKey.privateKey, 2);
    await waitClosed(short, 6000);
    assert.ok(cb.expired.includes('gw-1'));
    const gw = await gateway('gw-2', gw2Key.privateKey);
    assert.equal(cb.expire('gw-2'), 1);
    await waitClosed(gw, 3000);
    await closeAll(clients.splice(0));
  });

  it('closes a plain device connection that sends a control message', async () => {
    const dev = await connectClient(cb.url, {
      clientId: cb.clientIdFor('plain-dev'),
      username: 'unused',
      password: jwt(plainKey.privateKey),
    });
    clients.push(dev);
    await publish(dev, '/devices/plain-dev/events', 'own telemetry', { qos: 1 });
    assert.equal(cb.telemetry('plain-dev').at(-1)?.payload, 'own telemetry');
    dev.publish('/devices/bound-dev/attach', '', { qos: 1 });
    await waitClosed(dev);
    assert.ok(cb.refusals.some((r) => r.id === 'plain-dev' && r.reason === 'control_from_non_gateway'));
    await closeAll(clients.splice(0));
  });
});
