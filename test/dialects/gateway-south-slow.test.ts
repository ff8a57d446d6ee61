/**
 * A south gateway that stops reading its socket while the platform keeps sending its devices
 * QoS 0 downlinks. Each device has a north connection of its own, which can wait: what the
 * gateway does not read must hold those connections back (as on any connection), not pile up
 * in the proxy's memory. Real MQTT.js gateway and platform clients, the north on aedes.
 */
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { type AedesServer, startAedes } from '../emulators/aedes-server.js';
import { closeAll, connectClient, type MqttClient, publish, subscribe } from '../helpers/clients.js';
import type { TestProxy } from '../helpers/proxy.js';
import { connectGateway, publicPem, type TestGateway } from './gateway-south-kit.js';
import { ecKey, metricValue, scrape, startRouteProxy, tempDir, until, writeCredentials } from './kit.js';

const SECRET = 'akzGwSouthSlow0a1b2c3d4e5f6a7';
const DOWNLINKS = 400;
const PAYLOAD = Buffer.alloc(64 * 1024, 'x');

describe('a south gateway that does not read its downlinks', () => {
  const gwKey = ecKey();
  const tmp = tempDir('mdp-gw-south-slow-');
  const clients: MqttClient[] = [];
  let north: AedesServer;
  let proxy: TestProxy;
  let gw: TestGateway;
  let platform: MqttClient;

  before(async () => {
    north = await startAedes({});
    const creds = writeCredentials(tmp.dir, [
      { south: { deviceId: 'gw-1', publicKey: publicPem(gwKey.publicKey) }, north: {} },
      { south: { deviceId: 'dev-1', gateway: 'gw-1' }, north: { connectorId: 'conn-1', secret: SECRET } },
    ]);
    proxy = await startRouteProxy('clearblade-gateway-to-akenza', north.url, creds, {
      overrides: { limits: { maxPacketBytes: 256 * 1024 } },
    });
    gw = await connectGateway(proxy.url, 'gw-1', gwKey.privateKey);
    clients.push(gw.client);
    await publish(gw.client, '/devices/dev-1/attach', '', { qos: 1 });
    await subscribe(gw.client, '/devices/dev-1/commands/#', { qos: 0 });
    platform = await connectClient(north.url, { clientId: 'platform' });
    clients.push(platform);
  });

  after(async () => {
    (gw?.client.stream as Socket | undefined)?.resume();
    await closeAll(clients);
    await proxy?.close(500);
    await north?.stop();
    tmp.cleanup();
  });

  it('holds the device’s north connection back instead of queueing without bound', async () => {
    const southOut = async () =>
      metricValue(await scrape(proxy), 'mqtt_proxy_bytes_total', 'direction="south_out",type="publish"');
    const before = await southOut();
    (gw.client.stream as Socket).pause();
    for (let i = 0; i < DOWNLINKS; i++)
      await publish(platform, `/down/${SECRET}/id/dev-1/cmd`, PAYLOAD, { qos: 0 });
    // Everything the platform sent has left it; what the proxy took of it is written south
    // (twice: the device's session to the gateway's front, the front to the gateway).
    await until(() => false, 1000, 'a quiet moment').catch(() => undefined);
    const last = (await southOut()) - before;
    const total = 2 * DOWNLINKS * PAYLOAD.length;
    assert.ok(
      last < total / 2,
      `the proxy wrote ${last} of ${total} bytes toward a gateway that reads nothing`,
    );
    // Once it reads again, the rest comes (QoS 0 through a connection that waited: none lost).
    let got = 0;
    gw.client.on('message', (t) => {
      if (t === '/devices/dev-1/commands/cmd') got++;
    });
    (gw.client.stream as Socket).resume();
    await until(() => got === DOWNLINKS, 20_000, 'every downlink at the gateway');
  });
});
