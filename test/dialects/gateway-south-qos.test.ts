/**
 * QoS 1 through a south gateway, end to end: the gateway's PUBACK for a device's uplink is the
 * north platform's PUBACK, relayed. The north is an aedes broker whose publish authorisation
 * is held until the test releases it (aedes acknowledges a publish only once it is authorised),
 * so the gateway must have no PUBACK while the north holds the message.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type AedesServer, startAedes } from '../emulators/aedes-server.js';
import { closeAll, gather, type MqttClient, publish, withTimeout } from '../helpers/clients.js';
import type { TestProxy } from '../helpers/proxy.js';
import { connectGateway, publicPem, type TestGateway } from './gateway-south-kit.js';
import { ecKey, startRouteProxy, tempDir, until, writeCredentials } from './kit.js';

const SECRET = 'akzGwSouthQos0a1b2c3d4e5f6a7b';

describe('QoS 1 uplinks through a south gateway are acknowledged by the north', () => {
  const gwKey = ecKey();
  const tmp = tempDir('mdp-gw-south-qos-');
  const clients: MqttClient[] = [];
  /** Authorisations the north holds: releasing one lets aedes store and acknowledge the publish. */
  const held: Array<{ topic: string; payload: string; release(): void }> = [];
  let hold = false;
  let north: AedesServer;
  let proxy: TestProxy;
  let gw: TestGateway;

  before(async () => {
    north = await startAedes({
      authenticate: (_client, username, password, done) =>
        done(null, username === 'conn-1' && password?.toString() === SECRET),
      authorizePublish: (_client, packet, cb) => {
        const entry = { topic: packet.topic, payload: packet.payload.toString(), release: () => cb(null) };
        if (hold) held.push(entry);
        else cb(null);
      },
    });
    const creds = writeCredentials(tmp.dir, [
      { south: { deviceId: 'gw-1', publicKey: publicPem(gwKey.publicKey) }, north: {} },
      { south: { deviceId: 'dev-1', gateway: 'gw-1' }, north: { connectorId: 'conn-1', secret: SECRET } },
    ]);
    proxy = await startRouteProxy('clearblade-gateway-to-akenza', north.url, creds);
    gw = await connectGateway(proxy.url, 'gw-1', gwKey.privateKey);
    clients.push(gw.client);
    await publish(gw.client, '/devices/dev-1/attach', '', { qos: 1 });
  });

  after(async () => {
    for (const h of held.splice(0)) h.release();
    await closeAll(clients);
    await proxy?.close(500);
    await north?.stop();
    tmp.cleanup();
  });

  it('holds the PUBACK while the north holds the message, and relays it once the north acknowledges', async () => {
    hold = true;
    const pubacks: number[] = [];
    gw.client.on('packetreceive', (p) => {
      if (p.cmd === 'puback') pubacks.push(p.messageId ?? 0);
    });
    const done = publish(gw.client, '/devices/dev-1/events', '{"seq":1}', { qos: 1 }, 10_000);
    await until(() => held.length === 1, 5000, 'the uplink to reach the north');
    assert.equal(held[0]?.topic, `/up/${SECRET}/id/dev-1`);
    assert.deepEqual(JSON.parse(held[0]?.payload ?? ''), { seq: 1 });
    // The message is at the north, unacknowledged: nothing comes back to the gateway meanwhile.
    await gather(gw.client, '#', 300);
    assert.deepEqual(pubacks, [], 'no PUBACK before the north acknowledged');
    hold = false;
    held.shift()?.release();
    await withTimeout(done, 5000, 'the PUBACK after the north acknowledged');
    assert.equal(pubacks.length, 1);
  });
});
