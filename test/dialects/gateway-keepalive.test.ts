/**
 * The proxy's gateway link keeps its shared connection alive: it sends PINGREQs when it has
 * nothing else to send (the CONNECT asks for a keepalive), as any MQTT client must. Nothing
 * pinged it (the devices' sessions answer their own pings locally), so a quiet fleet lost the
 * gateway connection to the platform's keepalive check every 1.5 keepalives, and every device
 * was attached again each time. Connector devices, the ClearBlade emulator on aedes (which
 * closes a connection silent for 1.5 keepalives).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type ClearBladePlatform, startClearBladePlatform } from '../emulators/clearblade-platform.js';
import { closeAll, connectClient, type MqttClient } from '../helpers/clients.js';
import type { TestProxy } from '../helpers/proxy.js';
import { rsaKey, startRouteProxy, tempDir, writeCredentials } from './kit.js';

const GATEWAY = 'gw-ka';
const KEEPALIVE_S = 1;
const gwKey = rsaKey();
const tokenOf = (id: string): string => `token-${id}-0123456789abcdef`;

describe('the gateway link on a quiet fleet', () => {
  let cb: ClearBladePlatform;
  let proxy: TestProxy;
  const tmp = tempDir();
  const clients: MqttClient[] = [];

  before(async () => {
    cb = await startClearBladePlatform({
      project: 'ka-project',
      registry: 'ka-registry',
      gateways: [{ id: GATEWAY, publicKey: gwKey.publicKey }],
      devices: [{ id: 'q1', boundTo: [GATEWAY] }],
    });
    const creds = writeCredentials(tmp.dir, [
      {
        south: { deviceId: 'q1', token: tokenOf('q1') },
        north: {
          privateKey: gwKey.pem,
          gatewayId: GATEWAY,
          project: 'ka-project',
          registry: 'ka-registry',
          region: 'us-central1',
        },
      },
    ]);
    proxy = await startRouteProxy('connector-to-clearblade', cb.url, creds);
  });

  after(async () => {
    await closeAll(clients);
    await proxy?.close(500);
    await cb?.stop();
    tmp.cleanup();
  });

  it('keeps its one connection through a silence of several keepalives', async () => {
    // The device's keepalive is the link's (its CONNECT is the link's template).
    const q1 = await connectClient(proxy.url, {
      clientId: 'q1',
      username: 'q1',
      password: tokenOf('q1'),
      keepalive: KEEPALIVE_S,
    });
    clients.push(q1);
    await cb.waitFor(() => cb.attached(GATEWAY).includes('q1'), 5000, 'q1 attached');
    const attaches = () => cb.controls.filter((c) => c.op === 'attach' && c.deviceId === 'q1').length;
    assert.equal(attaches(), 1);
    // Nothing to send for 4 keepalives (the device pings the proxy, which answers itself).
    await new Promise((r) => setTimeout(r, 4000 * KEEPALIVE_S));
    assert.equal(attaches(), 1, 'never attached again: the connection was never lost');
    assert.ok(cb.online(GATEWAY));
  });
});
