/**
 * The emulators over TLS, as the real platforms run: ClearBlade's bridge on mqtts with a
 * gateway JWT, and Connector's certificate authentication (client certificate CN = device id).
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { signJwt } from '../../src/auth/jwt.js';
import { startClearBladePlatform } from '../emulators/clearblade-platform.js';
import { startConnectorPlatform } from '../emulators/connector-platform.js';
import { generateCerts, type TestPki } from '../helpers/certs.js';
import {
  closeAll,
  connectClient,
  type MqttClient,
  nextMessage,
  publish,
  tryConnect,
} from '../helpers/clients.js';

describe('emulators over TLS', () => {
  let pki: TestPki;
  const clients: MqttClient[] = [];
  before(() => {
    pki = generateCerts({ clients: ['cert-dev-1'] });
  });
  after(async () => {
    await closeAll(clients);
    pki?.cleanup();
  });

  it('ClearBlade: a gateway connects over mqtts with its JWT; a plain TCP client cannot', async () => {
    const key = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const cb = await startClearBladePlatform({
      project: 'p',
      registry: 'r',
      gateways: [{ id: 'gw', publicKey: key.publicKey }],
      tls: { cert: pki.server.cert, key: pki.server.key },
    });
    try {
      assert.match(cb.url, /^mqtts:\/\//);
      const now = Math.floor(Date.now() / 1000);
      const opts = {
        clientId: cb.clientIdFor('gw'),
        username: 'unused',
        password: signJwt({ iat: now, exp: now + 600, aud: 'p' }, key.privateKey),
      };
      const gw = await connectClient(cb.url, { ...opts, ca: pki.ca.cert, servername: 'localhost' });
      clients.push(gw);
      await publish(gw, '/devices/gw/events', 'over tls', { qos: 1 });
      assert.equal(cb.telemetry('gw').at(-1)?.payload, 'over tls');
      const plain = await tryConnect(cb.url.replace('mqtts', 'mqtt'), opts, 3000);
      assert.equal(plain.connack, undefined);
      await closeAll(clients.splice(0));
    } finally {
      await cb.stop();
    }
  });

  it('Connector: a client certificate authenticates the device named by its CN; none is anonymous', async () => {
    const platform = await startConnectorPlatform({
      tls: { cert: pki.server.cert, key: pki.server.key, ca: pki.ca.cert },
    });
    try {
      const tlsOpts = { ca: pki.ca.cert, servername: 'localhost', clientId: '' };
      const client = pki.clients['cert-dev-1'];
      assert.ok(client);
      const dev = await connectClient(platform.url, { ...tlsOpts, cert: client.cert, key: client.key });
      clients.push(dev);
      await publish(dev, '$resource/temp', '19', { qos: 1 });
      assert.equal(platform.device('cert-dev-1')?.resources.get('temp')?.value, '19');
      const down = nextMessage(dev, '$resource/+');
      assert.equal(await platform.set('cert-dev-1', 'mode', 'eco'), true);
      assert.equal((await down).payload.toString(), 'eco');
      const rogue = await connectClient(platform.url, {
        ...tlsOpts,
        cert: pki.rogue.client.cert,
        key: pki.rogue.client.key,
      });
      clients.push(rogue);
      rogue.publish('$resource/temp', '1');
      await platform.waitFor(() => platform.violations.some((v) => v.reason === 'anonymous_publish'), 3000);
      await closeAll(clients.splice(0));
    } finally {
      await platform.stop();
    }
  });
});
