/**
 * The route evrythng-to-connector with the Connector served over TLS by a private CA (the
 * proxy's north.ca), as the real Connector is (TLS on 443): north connections that end
 * abruptly, the readiness probe, and the activation of a device without a token, which goes
 * to the same platform as its north connection, so it must trust the same CA (and present
 * the same client certificate, SNI...). The aedes Connector emulator, a real TLS listener.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type ConnectorPlatform, startConnectorPlatform } from '../emulators/connector-platform.js';
import { generateCerts, type TestPki } from '../helpers/certs.js';
import { closeAll, connectClient, type MqttClient, publish, waitFor } from '../helpers/clients.js';
import { startTestProxy, type TestProxy } from '../helpers/proxy.js';
import { evrythngToConnector, type MappingsDir, type TempStore, tempStore } from './connector-env.js';

const KEY = 'evt-device-key-tls-0123456789';
/** A device whose Connector token is in the credentials file: nothing to activate. */
const KEY_T = 'evt-device-key-tok-0123456789';
const TOKEN_T = 'tls-known-token-0123456789';

describe('EVRYTHNG face onto a Connector over TLS with a private CA', () => {
  let pki: TestPki;
  let connector: ConnectorPlatform;
  let mappings: MappingsDir;
  let st: TempStore;
  let proxy: TestProxy;
  const clients: MqttClient[] = [];

  before(async () => {
    pki = generateCerts();
    connector = await startConnectorPlatform({
      authType: 'token',
      devices: [{ id: 'dev-tok', token: TOKEN_T }],
      tls: { cert: pki.server.cert, key: pki.server.key },
    });
    mappings = evrythngToConnector(connector.url, [
      `- south: { apiKey: "${KEY}", thngId: THNG1 }`,
      '  north: { deviceId: dev-tls }',
      `- south: { apiKey: "${KEY_T}", thngId: THNG2 }`,
      `  north: { deviceId: dev-tok, token: "${TOKEN_T}" }`,
    ]);
    st = tempStore();
    proxy = await startTestProxy(
      { north: { ca: pki.ca.certPath }, mapping: { dir: mappings.dir, route: 'evrythng-to-connector' } },
      { store: st.store },
    );
  });

  after(async () => {
    await closeAll(clients);
    await proxy?.close();
    await st?.cleanup();
    await connector?.stop();
    mappings?.cleanup();
    pki?.cleanup();
  });

  it('activates the device over TLS with the configured CA, then connects it north', async () => {
    const c = await connectClient(proxy.url, { username: 'authorization', password: KEY });
    clients.push(c);
    assert.deepEqual(connector.provisionRequests, [{ deviceId: 'dev-tls', accepted: true }]);
    assert.equal(
      (await st.store.get('connector-north', 'dev-tls'))?.token,
      connector.device('dev-tls')?.token,
    );
    await publish(c, '/thngs/THNG1/properties/temp', '[{"value": 21.5}]', { qos: 1 });
    await connector.waitFor(() => connector.device('dev-tls')?.resources.get('temp') !== undefined);
    assert.equal(connector.device('dev-tls')?.resources.get('temp')?.value, '21.5');
  });

  it('a device that drops its connection ends its TLS north connection cleanly; the proxy serves on', async () => {
    const c = await connectClient(proxy.url, {
      username: 'authorization',
      password: KEY_T,
      reconnectPeriod: 0,
    });
    clients.push(c);
    const before = connector.device('dev-tok')?.clients.size ?? 0;
    assert.ok(before > 0, 'the device is online north');
    c.stream.destroy(); // no DISCONNECT: the north connection is ended abruptly (the will is due)
    await connector.waitFor(() => (connector.device('dev-tok')?.clients.size ?? 0) < before);
    const again = await connectClient(proxy.url, { username: 'authorization', password: KEY_T });
    clients.push(again);
    await publish(again, '/thngs/THNG2/properties/temp', '[{"value": 22.5}]', { qos: 1 });
    await connector.waitFor(() => connector.device('dev-tok')?.resources.get('temp')?.value === '22.5');
  });

  it('/readyz finds the TLS north reachable', async () => {
    let body = '';
    await waitFor(async () => {
      const res = await fetch(`${proxy.metricsUrl}/readyz`, { signal: AbortSignal.timeout(5000) });
      body = await res.text();
      return res.status === 200;
    }, 5000).catch(() => assert.fail(`/readyz: ${body}`));
  });
});
