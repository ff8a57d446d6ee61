/**
 * The gateway plan the engine builds for a ClearBlade route, without sockets: one JWT per
 * gateway identity however many devices, a fresh JWT on each (re)connection of the link,
 * renewal before expiry, attach/detach/subscriptions per device; and what a gateway error
 * becomes in each south dialect.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { IConnectPacket } from 'mqtt-packet';
import { verifyJwt } from '../../src/auth/jwt.js';
import type { ConnectDecision, NorthPlan } from '../../src/core/contract.js';
import { silentLogger } from '../../src/log/logger.js';
import { GATEWAY_LINK_KEEPALIVE_S, renewAfterMs } from '../../src/mapping/engine.js';
import { loadMappings, planFor } from '../../src/mapping/load.js';
import { openTranslator } from '../../src/mapping/translator.js';
import { buildRoute } from '../../src/routes/index.js';
import { createJwtMinter } from '../../src/routes/jwt.js';
import { shippedMappings } from '../mapping/shipped.js';
import { ecKey, MAPPINGS, rsaKey, tempDir, writeCredentials } from './kit.js';

const gw = rsaKey();
const TOKEN_A = 'token-a-0123456789abcdef';
const TOKEN_B = 'token-b-0123456789abcdef';

function connect(clientId: string, password: string): IConnectPacket {
  return {
    cmd: 'connect',
    protocolId: 'MQTT',
    protocolVersion: 4,
    clientId,
    username: clientId,
    password: Buffer.from(password),
    clean: true,
    keepalive: 30,
  };
}

type Gateway = Extract<NorthPlan, { mode: 'gateway' }>;

function gatewayOf(d: ConnectDecision): Gateway {
  assert.equal(d.accept, true);
  if (!d.accept || d.north.mode !== 'gateway') throw new Error('not a gateway plan');
  return d.north;
}

describe('the ClearBlade gateway plan', () => {
  const tmp = tempDir();
  after(() => tmp.cleanup());

  it('one gateway JWT for every device, fresh on each link connection, renewed before expiry', async () => {
    const creds = writeCredentials(tmp.dir, [
      { south: { deviceId: 'dev-a', token: TOKEN_A }, north: { privateKey: gw.pem } },
      { south: { deviceId: 'dev-b', token: TOKEN_B }, north: { privateKey: gw.pem } },
    ]);
    const minter = createJwtMinter();
    const built = await buildRoute({
      dir: MAPPINGS,
      route: 'connector-to-clearblade',
      credentials: creds,
      log: silentLogger,
      mintJwt: minter.mintJwt,
      mintJwtSync: minter.mintJwtSync,
    });
    assert.deepEqual(built.errors, []);
    const route = built.handler;
    assert.ok(route);
    const a = gatewayOf(await route.openSession({ connect: connect('dev-a', TOKEN_A), listener: 'tcp' }));
    const b = gatewayOf(await route.openSession({ connect: connect('dev-b', TOKEN_B), listener: 'tcp' }));
    assert.equal(a.key, 'gw-1');
    assert.equal(b.key, 'gw-1');
    assert.equal(minter.signer.size, 1, 'one cached JWT: the gateway identity, not one per device');
    assert.equal(a.deviceId, 'dev-a');
    assert.deepEqual(
      [a.attach.topic, a.attach.qos, a.attach.payload.toString()],
      ['/devices/dev-a/attach', 1, '{}'],
    );
    assert.deepEqual([a.detach.topic, a.detach.qos], ['/devices/dev-a/detach', 1]);
    // The spec subscribes config at QoS 1 (retried until acknowledged), commands at QoS 0,
    // although a Connector device takes QoS 0 only.
    assert.deepEqual(a.subscriptions.map((s) => [s.topic, s.qos]).sort(), [
      ['/devices/dev-a/commands/#', 0],
      ['/devices/dev-a/config', 1],
    ]);
    assert.deepEqual(a.gatewaySubscriptions, [{ topic: '/devices/gw-1/errors', qos: 0 }]);
    assert.equal(a.renewAfterMs, 3300_000, 'renewed 5 minutes before a 1 h JWT expires');

    const c1 = a.connect();
    assert.equal(c1.keepalive, GATEWAY_LINK_KEEPALIVE_S, "the link's keepalive, not the device's 30 s");
    // A device asking no keepalive (0) or a long one: the shared connection keeps its own.
    for (const keepalive of [0, 1200]) {
      const d = gatewayOf(
        await route.openSession({ connect: { ...connect('dev-b', TOKEN_B), keepalive }, listener: 'tcp' }),
      );
      assert.equal(d.connect().keepalive, GATEWAY_LINK_KEEPALIVE_S);
    }
    assert.equal(
      c1.clientId,
      'projects/my-project/locations/us-central1/registries/my-registry/devices/gw-1',
    );
    assert.equal(c1.username, 'unused');
    const v1 = verifyJwt(String(c1.password), gw.publicKey, {
      audience: 'my-project',
      algorithms: ['RS256'],
    });
    assert.ok(v1.ok);
    assert.equal((v1.claims.exp ?? 0) - (v1.claims.iat ?? 0), 3600);
    // A later connection signs anew: its iat is never older than the first one's.
    const c2 = a.connect();
    const v2 = verifyJwt(String(c2.password), gw.publicKey, { audience: 'my-project' });
    assert.ok(v2.ok);
    assert.ok((v2.claims.iat ?? 0) >= (v1.claims.iat ?? 0));
  });

  it('signs ES256 for an EC gateway key (alg auto)', async () => {
    const ec = ecKey();
    const creds = writeCredentials(
      tmp.dir,
      [{ south: { deviceId: 'dev-e', token: TOKEN_A }, north: { privateKey: ec.pem } }],
      'ec.yaml',
    );
    const minter = createJwtMinter();
    const { handler } = await buildRoute({
      dir: MAPPINGS,
      route: 'connector-to-clearblade',
      credentials: creds,
      log: silentLogger,
      mintJwt: minter.mintJwt,
      mintJwtSync: minter.mintJwtSync,
    });
    const g = gatewayOf(await handler!.openSession({ connect: connect('dev-e', TOKEN_A), listener: 'tcp' }));
    const v = verifyJwt(String(g.connect().password), ec.publicKey, { algorithms: ['ES256'] });
    assert.ok(v.ok);
  });

  it('renewal time: 5 minutes early, or a fifth early for short lifetimes', () => {
    assert.equal(renewAfterMs(3600), 3300_000);
    assert.equal(renewAfterMs(1200), 960_000);
    assert.equal(renewAfterMs(60), 48_000);
  });
});

describe('a gateway error, per south dialect', () => {
  const m = loadMappings(shippedMappings());
  const error = { type: 'GATEWAY_DEVICE_NOT_FOUND', description: 'device is not attached' };

  it('disconnects a Connector device (anything unexpected closes a Connector connection)', () => {
    const plan = planFor(m, 'connector', 'clearblade');
    assert.ok(plan);
    const s = openTranslator(plan, {
      deviceId: 'd1',
      token: 't',
      project: 'p',
      region: 'r',
      registry: 'g',
      gatewayId: 'gw',
      privateKey: 'k',
    });
    assert.deepEqual(s.onGatewayError(error), { verdict: 'disconnect', reason: 'gateway_error' });
  });

  it('keeps an akenza device connected (akenza has no error topic): dropped, counted by the core', () => {
    const plan = planFor(m, 'akenza', 'clearblade');
    assert.ok(plan);
    const s = openTranslator(plan, {
      deviceId: 'd1',
      connectorId: 'c',
      secret: 's',
      project: 'p',
      region: 'r',
      registry: 'g',
      gatewayId: 'gw',
      privateKey: 'k',
    });
    assert.deepEqual(s.onGatewayError(error), { verdict: 'drop', reason: 'gateway_error' });
  });

  it('publishes the error to a device that speaks ClearBlade itself, on its own errors topic', () => {
    const plan = planFor(m, 'clearblade', 'akenza');
    assert.ok(plan);
    const s = openTranslator(plan, {
      deviceId: 'd1',
      project: 'p',
      region: 'r',
      registry: 'g',
      deviceJwt: 'j',
      connectorId: 'c',
      secret: 's',
    });
    const o = s.onGatewayError(error);
    assert.equal(o.verdict, 'continue');
    assert.equal(o.south?.[0]?.topic, '/devices/d1/errors');
    assert.deepEqual(JSON.parse(o.south?.[0]?.payload.toString() ?? ''), {
      error_type: 'GATEWAY_DEVICE_NOT_FOUND',
      device_id: 'd1',
      description: 'device is not attached',
    });
  });
});
