/**
 * openSession of a translating route: south identity recognition per the dialect's auth
 * schemes, refusals (never carrying the credential), the north CONNECT (credentials, MQTT
 * version, will), isolation of identity values, and the gateway plan.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { IConnectPacket } from 'mqtt-packet';
import type { ConnectDecision } from '../../src/core/contract.js';
import { createDialectRoute } from '../../src/mapping/engine.js';
import { CredentialsIndex } from '../../src/mapping/identity.js';
import { loadMappings, planFor } from '../../src/mapping/load.js';
import { shippedMappings } from './shipped.js';

const m = loadMappings(shippedMappings());
const TOKEN = 'b7b34f55e948b94841820ea50868a2490632d78f';

function route(
  south: string,
  north: string,
  records: ConstructorParameters<typeof CredentialsIndex>[0],
  extra = {},
) {
  const plan = planFor(m, south, north);
  assert.ok(plan);
  return createDialectRoute({
    name: `${south}-${north}`,
    plan,
    identity: new CredentialsIndex(records),
    ...extra,
  });
}

const base: IConnectPacket = {
  cmd: 'connect',
  protocolVersion: 4,
  clientId: '',
  keepalive: 300,
  clean: true,
};
const accepted = (d: ConnectDecision) => {
  assert.ok(d.accept, `accepted (${d.accept ? '' : d.reason})`);
  return d;
};

test('Connector token auth: the north CONNECT carries the EVRYTHNG API key, keepalive clamped to 120', async () => {
  const r = route('connector', 'evrythng', [
    { south: { deviceId: '12345', token: TOKEN }, north: { thngId: 'UXYZ', apiKey: 'KEY' } },
  ]);
  const d = accepted(
    await r.openSession({ connect: { ...base, password: Buffer.from(TOKEN) }, listener: 'tcp' }),
  );
  assert.ok(d.north.mode === 'direct');
  const c = d.north.connect;
  assert.equal(c.username, 'authorization');
  assert.equal(c.password?.toString(), 'KEY');
  assert.equal(c.clientId, 'UXYZ');
  assert.equal(c.protocolVersion, 4);
  assert.equal(d.quirks.northKeepaliveMax, 120);
  assert.equal(d.quirks.sessionPresent, 'always');
  assert.equal(d.dialect, 'connector');
});

test('refusals: wrong token is bad_credentials (4/0x86), anonymous is not_authorized (5/0x87); no secret in the reason', async () => {
  const r = route('connector', 'evrythng', [
    { south: { deviceId: '12345', token: TOKEN }, north: { thngId: 'U', apiKey: 'K' } },
  ]);
  const bad = await r.openSession({
    connect: { ...base, username: '12345', password: Buffer.from('wrong-token-value') },
    listener: 'tcp',
  });
  assert.deepEqual(bad, { accept: false, returnCode: 4, reasonCode: 0x86, reason: 'bad_credentials' });
  const anon = await r.openSession({ connect: base, listener: 'tcp' });
  assert.deepEqual(anon, { accept: false, returnCode: 5, reasonCode: 0x87, reason: 'not_authorized' });
  // the right token with another device id is refused too
  const other = await r.openSession({
    connect: { ...base, username: '99999', password: Buffer.from(TOKEN) },
    listener: 'tcp',
  });
  assert.equal(other.accept, false);
});

test('certificate auth: the verified CN is the device id; an unknown CN is unknown_device', async () => {
  const r = route('connector', 'akenza', [
    { south: { deviceId: 'cert-dev' }, north: { connectorId: 'c', secret: 's' } },
  ]);
  const d = accepted(await r.openSession({ connect: base, listener: 'tls', peerCommonName: 'cert-dev' }));
  assert.ok(d.north.mode === 'direct');
  assert.equal(d.north.connect.username, 'c');
  const u = await r.openSession({ connect: base, listener: 'tls', peerCommonName: 'someone-else' });
  assert.deepEqual(u, { accept: false, returnCode: 5, reasonCode: 0x87, reason: 'unknown_device' });
});

test('an identity value that could widen a topic refuses the session', async () => {
  const r = route('connector', 'evrythng', [
    { south: { deviceId: '12345', token: TOKEN }, north: { thngId: 'U/#', apiKey: 'K' } },
  ]);
  const d = await r.openSession({ connect: { ...base, password: Buffer.from(TOKEN) }, listener: 'tcp' });
  assert.deepEqual(d, { accept: false, returnCode: 5, reasonCode: 0x87, reason: 'bad_identity' });
});

test('MQTT version bridging: an MQTT 5 akenza device gets a 3.1.1 EVRYTHNG connection; its will is translated', async () => {
  const r = route('akenza', 'evrythng', [
    { south: { deviceId: 'dev-1', connectorId: 'c1', secret: 'S3' }, north: { thngId: 'T', apiKey: 'K' } },
  ]);
  const d = accepted(
    await r.openSession({
      connect: {
        ...base,
        protocolVersion: 5,
        clientId: 'dev-1',
        username: 'c1',
        password: Buffer.from('S3'),
        will: { topic: '/up/S3/id/dev-1', payload: Buffer.from('{"online":false}'), qos: 1, retain: false },
      },
      listener: 'tcp',
    }),
  );
  assert.ok(d.north.mode === 'direct');
  assert.equal(d.north.connect.protocolVersion, 4);
  assert.equal(d.north.connect.will?.topic, '/thngs/T/properties/online');
  // Published when the connection is lost, not at CONNECT: no time of the CONNECT's in it.
  assert.equal(String(d.north.connect.will?.payload), '[{"value":false}]');
});

test('a will is dropped where the dialect ignores wills (Connector)', async () => {
  const r = route('connector', 'evrythng', [
    { south: { deviceId: '12345', token: TOKEN }, north: { thngId: 'U', apiKey: 'K' } },
  ]);
  const d = accepted(
    await r.openSession({
      connect: {
        ...base,
        password: Buffer.from(TOKEN),
        will: { topic: '$resource/x', payload: Buffer.from('1'), qos: 0, retain: false },
      },
      listener: 'tcp',
    }),
  );
  assert.ok(d.north.mode === 'direct');
  assert.equal(d.north.connect.will, undefined);
  assert.equal(d.quirks.will, 'ignore');
});

test('gateway route: ClearBlade north gets a shared connection key, attach/detach and the errors subscription', async () => {
  const plan = planFor(m, 'akenza', 'clearblade');
  assert.ok(plan);
  const minted: Array<Record<string, unknown>> = [];
  const r = createDialectRoute({
    name: 'a-cb',
    plan,
    connection: 'gateway',
    routeVars: { project: 'p1', region: 'r1', registry: 'reg', gatewayId: 'gw-1' },
    identity: new CredentialsIndex([
      { south: { deviceId: 'dev-1', connectorId: 'c1', secret: 'S3' }, north: { privateKey: 'PEM' } },
    ]),
    mintJwt: async (req) => {
      minted.push({ id: req.id, alg: req.alg, claims: req.claims });
      return 'signed.jwt.token';
    },
  });
  const d = accepted(
    await r.openSession({
      connect: { ...base, clientId: 'dev-1', username: 'c1', password: Buffer.from('S3') },
      listener: 'tcp',
    }),
  );
  assert.ok(d.north.mode === 'gateway');
  assert.equal(d.north.key, 'gw-1');
  assert.equal(d.north.deviceId, 'dev-1');
  assert.deepEqual(
    { topic: d.north.attach.topic, qos: d.north.attach.qos },
    { topic: '/devices/dev-1/attach', qos: 1 },
  );
  assert.deepEqual(
    { topic: d.north.detach.topic, qos: d.north.detach.qos },
    { topic: '/devices/dev-1/detach', qos: 1 },
  );
  assert.deepEqual(d.north.gatewaySubscriptions, [{ topic: '/devices/gw-1/errors', qos: 0 }]);
  const c = d.north.connect();
  assert.equal(c.clientId, 'projects/p1/locations/r1/registries/reg/devices/gw-1');
  assert.equal(c.password?.toString(), 'signed.jwt.token');
  assert.deepEqual(minted[0]?.claims, { aud: 'p1' });
  assert.equal(minted[0]?.alg, 'auto');
});

test('a route keyed by token still finds certificate devices by their CN', async () => {
  const plan = planFor(m, 'connector', 'evrythng');
  assert.ok(plan);
  const r = createDialectRoute({
    name: 'c-e',
    plan,
    identity: new CredentialsIndex(
      [
        { south: { deviceId: 'tok-dev', token: TOKEN }, north: { thngId: 'T1', apiKey: 'K1' } },
        { south: { deviceId: 'cert-dev' }, north: { thngId: 'T2', apiKey: 'K2' } },
      ],
      ['token'],
    ),
  });
  const d = accepted(await r.openSession({ connect: base, listener: 'tls', peerCommonName: 'cert-dev' }));
  assert.ok(d.north.mode === 'direct');
  assert.equal(d.north.connect.clientId, 'T2');
  // a token-less CONNECT naming a token device's id gets nothing
  const no = await r.openSession({
    connect: { ...base, username: 'tok-dev', password: Buffer.from('guess-guess-guess') },
    listener: 'tcp',
  });
  assert.equal(no.accept, false);
});

test('device JWTs (akenza device credentials): verified with the record public key, kept as deviceJwt', async () => {
  const { generateKeyPairSync } = await import('node:crypto');
  const { signJwt } = await import('../../src/auth/jwt.js');
  const { verifyJwt } = await import('../../src/auth/jwt.js');
  const k = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const other = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const publicKey = k.publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const plan = planFor(m, 'akenza', 'clearblade');
  assert.ok(plan);
  const r = createDialectRoute({
    name: 'a-cb',
    plan,
    connection: 'gateway',
    routeVars: { project: 'p1', region: 'r1', registry: 'reg', gatewayId: 'gw-1' },
    identity: new CredentialsIndex([
      { south: { deviceId: 'dev-9', publicKey }, north: { privateKey: 'PEM' } },
    ]),
    mintJwt: async () => 'gateway.jwt',
    verifyJwt: (token, key, audience) => {
      const v = verifyJwt(token, key, audience ? { audience } : {});
      return v.ok ? undefined : v.reason;
    },
  });
  const now = Math.floor(Date.now() / 1000);
  const good = signJwt({ iat: now, exp: now + 600 }, k.privateKey, 'ES256');
  const d = accepted(
    await r.openSession({
      connect: { ...base, clientId: 'dev-9', username: 'x', password: Buffer.from(good) },
      listener: 'tcp',
    }),
  );
  assert.ok(d.north.mode === 'gateway');
  assert.equal(
    d.north.attach.payload.toString(),
    JSON.stringify({ authorization: good }),
    'attached with its own JWT',
  );

  const forged = signJwt({ iat: now, exp: now + 600 }, other.privateKey, 'ES256');
  const expired = signJwt({ iat: now - 7200, exp: now - 3600 }, k.privateKey, 'ES256');
  for (const token of [forged, expired, 'not.a.jwt']) {
    const no = await r.openSession({
      connect: { ...base, clientId: 'dev-9', username: 'x', password: Buffer.from(token) },
      listener: 'tcp',
    });
    assert.deepEqual(no, { accept: false, returnCode: 4, reasonCode: 0x86, reason: 'bad_jwt' });
  }
});

test('persistent north sessions: the echo scope outlives a connection, and idle scopes are bounded', async () => {
  const n = 10_001;
  const tok = (i: number) => i.toString(16).padStart(40, '0');
  const records = Array.from({ length: n }, (_, i) => ({
    south: { deviceId: String(10_000 + i), token: tok(i) },
    north: { thngId: `T${i}`, apiKey: 'KEY' },
  }));
  const r = route('connector', 'evrythng', records, { nowUs: () => 1_700_000_000_000_000 });
  const open = async (i: number) => {
    const d = accepted(
      await r.openSession({
        connect: { ...base, clean: false, password: Buffer.from(tok(i)) },
        listener: 'tcp',
      }),
    );
    assert.ok(d.north.mode === 'direct');
    assert.equal(d.north.connect.clean, false);
    return d.mapper;
  };
  const up = (v: number) => ({
    cmd: 'publish' as const,
    topic: '$resource/temp',
    payload: Buffer.from(String(v)),
    qos: 1 as const,
    retain: false,
    dup: false,
  });
  const down = (i: number, v: number) => ({
    ...up(v),
    topic: `/thngs/T${i}/properties/temp`,
    payload: Buffer.from(`[{"value":${v},"timestamp":1700000000000}]`),
  });
  const a = await open(0);
  const sent = await a.uplink(up(1));
  assert.equal(sent.north?.[0]?.topic, '/thngs/T0/properties/temp');
  assert.equal(sent.north?.[0]?.payload.toString(), '[{"value":1,"timestamp":1700000000000}]');
  a.close();
  // The same client id again: the echo of what the last connection sent is recognised.
  const a2 = await open(0);
  assert.equal((await a2.downlink(down(0, 1))).reason, 'echo');
  await a2.uplink(up(2));
  a2.close();
  // Ten thousand other client ids come and go: the oldest idle scope is let go.
  for (let i = 1; i < n; i++) {
    const s = await open(i);
    await s.uplink(up(3));
    s.close();
  }
  const a3 = await open(0);
  assert.notEqual((await a3.downlink(down(0, 2))).reason, 'echo', 'the scope of client id T0 was let go');
  a3.close();
  const last = await open(n - 1);
  assert.equal((await last.downlink(down(n - 1, 3))).reason, 'echo', 'a recent one is kept');
});
