/**
 * A south gateway's attach while the device's north session is still connecting: every QoS 1
 * attach it sends is answered (MQTT-4.3.2: each QoS 1 PUBLISH gets its PUBACK), also a second
 * attach of the same device under another packet id, and one the gateway detaches before it
 * completed. Unanswered, each keeps a place in the gateway's in-flight window for good. The
 * north is an aedes broker whose authentication of the device is held by the test.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type AedesServer, startAedes } from '../emulators/aedes-server.js';
import { closeAll, type MqttClient, publish, withTimeout } from '../helpers/clients.js';
import type { TestProxy } from '../helpers/proxy.js';
import { connectGateway, publicPem, type TestGateway } from './gateway-south-kit.js';
import { ecKey, startRouteProxy, tempDir, until, writeCredentials } from './kit.js';

const SECRET = 'akzGwSouthAttach0a1b2c3d4e5f6';

describe("a south gateway's attach while the device's north session connects", () => {
  const gwKey = ecKey();
  const tmp = tempDir('mdp-gw-south-attach-');
  const clients: MqttClient[] = [];
  /** North CONNECTs the test holds (aedes answers once authenticate calls back). */
  const held: Array<() => void> = [];
  let hold = false;
  let north: AedesServer;
  let proxy: TestProxy;
  let gw: TestGateway;

  before(async () => {
    north = await startAedes({
      authenticate: (_client, username, password, done) => {
        const go = () => done(null, username === 'conn-1' && password?.toString() === SECRET);
        if (hold) held.push(go);
        else go();
      },
    });
    const creds = writeCredentials(tmp.dir, [
      { south: { deviceId: 'gw-1', publicKey: publicPem(gwKey.publicKey) }, north: {} },
      ...['dev-1', 'dev-2'].map((id) => ({
        south: { deviceId: id, gateway: 'gw-1' },
        north: { connectorId: 'conn-1', secret: SECRET },
      })),
    ]);
    proxy = await startRouteProxy('clearblade-gateway-to-akenza', north.url, creds);
    gw = await connectGateway(proxy.url, 'gw-1', gwKey.privateKey);
    clients.push(gw.client);
  });

  after(async () => {
    for (const go of held.splice(0)) go();
    await closeAll(clients);
    await proxy?.close(500);
    await north?.stop();
    tmp.cleanup();
  });

  it('acknowledges a second attach of the same device sent while the first is under way', async () => {
    hold = true;
    const first = publish(gw.client, '/devices/dev-1/attach', '', { qos: 1 }, 8000);
    await until(() => held.length === 1, 5000, "dev-1's north CONNECT");
    const second = publish(gw.client, '/devices/dev-1/attach', '', { qos: 1 }, 8000);
    // The proxy answers packets in order: this error says the second attach reached it.
    const barrier = gw.errorFor('GATEWAY_INVALID_MQTT_TOPIC', 'gw-1');
    await publish(gw.client, 'not-a-device-topic', '', { qos: 0 });
    await barrier;
    hold = false;
    held.shift()?.();
    await withTimeout(first, 5000, 'the PUBACK of the first attach');
    await withTimeout(second, 5000, 'the PUBACK of the second attach');
  });

  it('acknowledges an attach the gateway detached before it completed', async () => {
    hold = true;
    const attach = publish(gw.client, '/devices/dev-2/attach', '', { qos: 1 }, 8000);
    await until(() => held.length === 1, 5000, "dev-2's north CONNECT");
    await publish(gw.client, '/devices/dev-2/detach', '', { qos: 1 });
    hold = false;
    held.shift()?.();
    await withTimeout(attach, 5000, 'the PUBACK of the detached attach');
    // Detached: its events are not taken.
    const notFound = gw.errorFor('GATEWAY_DEVICE_NOT_FOUND', 'dev-2');
    await publish(gw.client, '/devices/dev-2/events', '{"n":1}', { qos: 0 });
    await notFound;
    assert.ok(gw.client.connected);
  });
});
