/**
 * The `south_gateway: true` route key (loader and check) and the engine's decisions for a
 * south gateway and its attached devices, without any connection.
 */
import assert from 'node:assert/strict';
import { cpSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { IConnectPacket } from 'mqtt-packet';
import { verifyJwt } from '../../src/auth/jwt.js';
import type { ConnectDecision, SouthHello } from '../../src/core/contract.js';
import { clearbladeGateway } from '../../src/dialects/clearblade-gateway.js';
import { silentLogger } from '../../src/log/logger.js';
import { createDialectRoute } from '../../src/mapping/engine.js';
import { CredentialsIndex } from '../../src/mapping/identity.js';
import { loadMappings, type MappingFile } from '../../src/mapping/load.js';
import { buildRoute } from '../../src/routes/index.js';
import { MAPPINGS_DIR, shippedMappings } from '../mapping/shipped.js';
import { cbJwt, clientIdFor, publicPem } from './gateway-south-kit.js';
import { ecKey, tempDir, writeCredentials } from './kit.js';

const route = (text: string): MappingFile => ({ path: 'routes/extra.yaml', folder: 'routes', text });

describe('south_gateway: true in a route', () => {
  it('gives a clearblade south route the ClearBlade gateway grammar', () => {
    const m = loadMappings(shippedMappings());
    assert.deepEqual(m.errors, []);
    assert.equal(m.routes.get('clearblade-gateway-to-akenza')?.southGateway, clearbladeGateway);
    assert.equal(m.routes.get('clearblade-gateway-to-evrythng')?.southGateway, clearbladeGateway);
    assert.equal(m.routes.get('akenza-to-clearblade')?.southGateway, undefined);
  });

  it('is refused for a south dialect without a gateway grammar, naming the file and the key', () => {
    const m = loadMappings([
      ...shippedMappings(),
      route('route: akenza-gw\nsouth: akenza\nnorth: evrythng\nsouth_gateway: true\n'),
    ]);
    assert.equal(m.routes.has('akenza-gw'), false);
    assert.equal(m.errors.length, 1);
    assert.match(
      m.errors[0] ?? '',
      /^routes\/extra\.yaml:4:\d+: dialect 'akenza' has no gateway grammar \(south gateways: clearblade\)/,
    );
  });

  it('must be a boolean', () => {
    const m = loadMappings([
      ...shippedMappings(),
      route('route: cb-gw\nsouth: clearblade\nnorth: akenza\nsouth_gateway: "yes"\n'),
    ]);
    assert.equal(m.routes.has('cb-gw'), false);
    assert.match(m.errors.join('\n'), /routes\/extra\.yaml:4:\d+: .*boolean/);
  });
});

describe('a south gateway route loaded from disk', () => {
  it('keeps its gateway grammar with local services (offline_sync) wrapped around it', async () => {
    const tmp = tempDir('mdp-gw-south-route-');
    try {
      for (const f of ['dialects', 'pairs'])
        cpSync(join(MAPPINGS_DIR, f), join(tmp.dir, f), { recursive: true });
      writeCredentials(tmp.dir, [{ south: { deviceId: 'gw-1', publicKey: 'unused-here' }, north: {} }]);
      const routes = join(tmp.dir, 'routes');
      cpSync(join(MAPPINGS_DIR, 'routes', 'clearblade-gateway-to-evrythng.yaml'), join(routes, 'a.yaml'));
      writeFileSync(
        join(routes, 'b.yaml'),
        'route: gw-sync\nsouth: clearblade\nnorth: evrythng\nsouth_gateway: true\noffline_sync: true\nidentity: { file: credentials.yaml }\n',
      );
      for (const name of ['clearblade-gateway-to-evrythng', 'gw-sync']) {
        const r = await buildRoute({
          dir: tmp.dir,
          route: name,
          credentials: join(tmp.dir, 'credentials.yaml'),
          log: silentLogger,
          watch: false,
        });
        assert.deepEqual(r.errors, []);
        assert.equal(r.handler?.southGateway, clearbladeGateway, name);
      }
    } finally {
      tmp.cleanup();
    }
  });
});

describe('the engine on a south gateway route', () => {
  const gwKey = ecKey();
  const devKey = ecKey();
  const plan = loadMappings(shippedMappings()).routes.get('clearblade-gateway-to-akenza')?.plan;
  assert.ok(plan);
  const north = { connectorId: 'conn-1', secret: 'akzSecretEngine0123456789' };
  const handler = createDialectRoute({
    name: 'gw-test',
    plan,
    southGateway: clearbladeGateway,
    identity: new CredentialsIndex(
      [
        { south: { deviceId: 'gw-1', publicKey: publicPem(gwKey.publicKey) }, north: {} },
        { south: { deviceId: 'gw-n', publicKey: publicPem(gwKey.publicKey), role: 'gateway' }, north },
        { south: { deviceId: 'dev-1', gateway: 'gw-1' }, north },
        { south: { deviceId: 'dev-2', gateway: 'gw-2', publicKey: publicPem(devKey.publicKey) }, north },
        { south: { deviceId: 'dev-3', publicKey: publicPem(devKey.publicKey) }, north },
      ],
      ['deviceId'],
    ),
    verifyJwt: (token, key, audience) => {
      const r = verifyJwt(token, key, audience ? { audience } : {});
      return r.ok ? undefined : r.reason;
    },
  });
  const hello = (id: string, password?: string, gateway?: string): SouthHello => {
    const connect: IConnectPacket = { cmd: 'connect', clientId: clientIdFor(id), username: 'unused' };
    if (password !== undefined) connect.password = Buffer.from(password);
    return { connect, listener: 'tcp', ...(gateway ? { gateway } : {}) };
  };
  const reason = (d: ConnectDecision) => (d.accept ? 'accepted' : d.reason);

  it('exposes the grammar', () => assert.equal(handler.southGateway, clearbladeGateway));

  it("accepts a gateway's own CONNECT with nothing north", async () => {
    const d = await handler.openSession(hello('gw-1', cbJwt(gwKey.privateKey)));
    assert.ok(d.accept);
    assert.equal(d.north.mode, 'local');
    assert.equal(reason(await handler.openSession(hello('gw-1', cbJwt(devKey.privateKey)))), 'bad_jwt');
    // Without its JWT a gateway proves nothing.
    assert.equal(reason(await handler.openSession(hello('gw-1'))), 'bad_credentials');
  });

  it('takes a device record connecting itself for a device, never for a gateway', async () => {
    // Bound to a gateway or not, a device with north credentials connecting directly is planned
    // north like on any route (no gateway role, so it may not attach others).
    for (const id of ['dev-2', 'dev-3']) {
      const d = await handler.openSession(hello(id, cbJwt(devKey.privateKey)));
      assert.ok(d.accept, id);
      assert.equal(d.southGateway, undefined, id);
      assert.equal(d.north.mode, 'direct', id);
    }
    // A bound device without a key of its own proves nothing when it connects itself.
    assert.equal(reason(await handler.openSession(hello('dev-1', cbJwt(devKey.privateKey)))), 'bad_jwt');
  });

  it("accepts a gateway's own topics as its own session only when its record has north credentials", async () => {
    const d = await handler.openSession(hello('gw-1', cbJwt(gwKey.privateKey)));
    assert.ok(d.accept);
    assert.deepEqual(d.southGateway, { ownNorth: false });
    const own = await handler.openSession(hello('gw-n', cbJwt(gwKey.privateKey)));
    assert.ok(own.accept);
    assert.equal(own.north.mode, 'local');
    assert.deepEqual(own.southGateway, { ownNorth: true });
    // Its own session, on its own authority: planned north as the gateway's own device.
    const self = await handler.openSession(hello('gw-n', undefined, 'gw-n'));
    assert.ok(self.accept);
    assert.equal(self.north.mode, 'direct');
    if (self.north.mode === 'direct') assert.equal(self.north.connect.clientId, 'gw-n');
    // A gateway is never attached by another gateway; one without north credentials goes nowhere.
    assert.equal(reason(await handler.openSession(hello('gw-n', undefined, 'gw-1'))), 'not_bound');
    assert.equal(reason(await handler.openSession(hello('gw-1', undefined, 'gw-1'))), 'no_north_credentials');
  });

  it('plans a bound device attached without a JWT as its own north session', async () => {
    const d = await handler.openSession(hello('dev-1', undefined, 'gw-1'));
    assert.ok(d.accept);
    assert.equal(d.north.mode, 'direct');
    if (d.north.mode !== 'direct') return;
    assert.equal(d.north.connect.clientId, 'dev-1');
    assert.equal(d.north.connect.username, 'conn-1');
    assert.equal(reason(await handler.openSession(hello('dev-1', undefined, 'gw-9'))), 'not_bound');
  });

  it("refuses another gateway's device even with its valid JWT; accepts an unbound device's JWT only", async () => {
    assert.equal(
      reason(await handler.openSession(hello('dev-2', cbJwt(devKey.privateKey), 'gw-1'))),
      'not_bound',
    );
    assert.equal(
      reason(await handler.openSession(hello('dev-2', cbJwt(devKey.privateKey), 'gw-2'))),
      'accepted',
    );
    assert.equal(
      reason(await handler.openSession(hello('dev-3', cbJwt(devKey.privateKey), 'gw-1'))),
      'accepted',
    );
    assert.equal(
      reason(await handler.openSession(hello('dev-3', cbJwt(gwKey.privateKey), 'gw-1'))),
      'bad_jwt',
    );
    assert.equal(reason(await handler.openSession(hello('dev-3', undefined, 'gw-1'))), 'not_bound');
  });
});
