/**
 * A gateway that sends its first packets right behind its CONNECT, without waiting for the
 * CONNACK (MQTT 3.1.1 §3.1.4 allows it; embedded clients do it): with a north session of its
 * own, the front connects that session before its CONNACK, and what came meanwhile (the
 * errors subscription, an attach) must be handled after it, not dropped unanswered. Raw bytes
 * for the gateway, akenza on mosquitto north.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import mqtt from 'mqtt-packet';
import { type MosquittoPlatform, startAkenzaSecretBroker } from '../emulators/mosquitto-platforms.js';
import type { TestProxy } from '../helpers/proxy.js';
import { connectPacket, rawConnect } from '../helpers/raw.js';
import { cbJwt, clientIdFor, publicPem } from './gateway-south-kit.js';
import { ecKey, startRouteProxy, tempDir, writeCredentials } from './kit.js';

const SECRET = 'akzGwPipe3e1f7a9c2b5d8e4f6a';
const NORTH = { connectorId: 'conn-1', secret: SECRET };

describe('a gateway pipelining packets behind its CONNECT', () => {
  const gwKey = ecKey();
  const tmp = tempDir('mdp-gw-pipe-');
  let broker: MosquittoPlatform;
  let proxy: TestProxy;

  before(async () => {
    broker = await startAkenzaSecretBroker({ connectors: [{ id: 'conn-1', secret: SECRET }] });
    const creds = writeCredentials(tmp.dir, [
      { south: { deviceId: 'gw-1', publicKey: publicPem(gwKey.publicKey), role: 'gateway' }, north: NORTH },
      { south: { deviceId: 'dev-1', gateway: 'gw-1' }, north: NORTH },
    ]);
    proxy = await startRouteProxy('clearblade-gateway-to-akenza', broker.url, creds);
  });

  after(async () => {
    await proxy?.close(500);
    await broker?.stop();
    tmp.cleanup();
  });

  it('answers the SUBSCRIBE and the attach sent before its CONNACK', async () => {
    const raw = await rawConnect(Number(new URL(proxy.url).port));
    const gen = (p: object) => mqtt.generate(p as mqtt.Packet, { protocolVersion: 4 });
    raw.write(
      Buffer.concat([
        gen(
          connectPacket({
            clientId: clientIdFor('gw-1'),
            username: 'unused',
            password: Buffer.from(cbJwt(gwKey.privateKey)),
          }),
        ),
        gen({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '/devices/gw-1/errors', qos: 0 }] }),
        gen({
          cmd: 'publish',
          topic: '/devices/dev-1/attach',
          payload: Buffer.alloc(0),
          qos: 1,
          messageId: 2,
          retain: false,
          dup: false,
        }),
      ]),
    );
    const seen: string[] = [];
    for (let i = 0; i < 3; i++) {
      const p = await raw.nextPacket(5000);
      seen.push(`${p.cmd}${'messageId' in p && p.messageId ? `:${p.messageId}` : ''}`);
    }
    assert.deepEqual(seen.sort(), ['connack', 'puback:2', 'suback:1']);
    assert.equal(raw.packets[0]?.cmd, 'connack', 'the CONNACK first');
    raw.destroy();
  });
});
