/**
 * How the proxy closes a north connection, seen in the kernel's TCP table (/proc/net/tcp):
 * the side that closes first keeps the connection in TIME_WAIT for a minute, and on the
 * proxy's side that is one of its ephemeral ports toward the broker. After a device's
 * DISCONNECT the proxy lets the broker close first; when a device vanishes it resets the
 * north connection (the broker still publishes the will). Either way none of the proxy's
 * ports toward the broker is left in TIME_WAIT. MQTT.js and a raw socket, through the proxy,
 * to mosquitto.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import {
  closeAll,
  connectClient,
  type MqttClient,
  nextMessage,
  subscribe,
  waitFor,
} from '../helpers/clients.js';
import { type MosquittoBroker, startMosquitto } from '../helpers/mosquitto.js';
import { startTestProxy, type TestProxy } from '../helpers/proxy.js';
import { connectPacket, rawConnect } from '../helpers/raw.js';

const TIME_WAIT = '06';

/** TIME_WAIT entries of loopback TCP: [local port, remote port]. */
function timeWaits(): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f[3] !== TIME_WAIT) continue;
      const port = (a: string | undefined) => Number.parseInt(a?.split(':')[1] ?? '', 16);
      out.push([port(f[1]), port(f[2])]);
    }
  }
  return out;
}

describe('core: closing north connections', () => {
  let broker: MosquittoBroker;
  let proxy: TestProxy;
  let brokerPort: number;
  const clients: MqttClient[] = [];
  before(async () => {
    broker = await startMosquitto();
    brokerPort = Number(new URL(broker.url).port);
    proxy = await startTestProxy({ north: { url: broker.url } });
  });
  after(async () => {
    await closeAll(clients);
    await proxy.close();
    await broker.stop();
  });

  /** TIME_WAITs of this broker: held by the broker (local port) and by its clients (remote port). */
  const held = () => {
    const tw = timeWaits();
    return {
      byBroker: tw.filter(([l]) => l === brokerPort).length,
      byClients: tw.filter(([, r]) => r === brokerPort).length,
    };
  };

  it('after a DISCONNECT, the broker closes first: the TIME_WAIT is the broker’s', async () => {
    const before = held();
    for (let i = 0; i < 5; i++) {
      const c = await connectClient(proxy.url, { clientId: `close-graceful-${i}`, reconnectPeriod: 0 });
      await new Promise<void>((r) => c.end(false, {}, () => r()));
    }
    await waitFor(() => proxy.connectionCount() === 0, 5000, 'the sessions to close');
    await waitFor(() => held().byBroker >= before.byBroker + 5, 5000, 'the broker-side TIME_WAITs');
    assert.equal(held().byClients, before.byClients, 'no proxy port toward the broker in TIME_WAIT');
  });

  it('a vanished device: the north connection is reset, no TIME_WAIT, and the will is published', async () => {
    const watcher = await connectClient(broker.url, { clientId: 'close-watcher' });
    clients.push(watcher);
    await subscribe(watcher, 'close/will/#', { qos: 1 });
    const before = held();
    const wills = [];
    for (let i = 0; i < 3; i++) {
      const will = nextMessage(watcher, `close/will/${i}`);
      const raw = await rawConnect(Number(new URL(proxy.url).port));
      raw.send(
        connectPacket({
          clientId: `close-abrupt-${i}`,
          will: { topic: `close/will/${i}`, payload: Buffer.from('gone'), qos: 1, retain: false },
        }),
      );
      assert.equal((await raw.nextPacket()).cmd, 'connack');
      raw.destroy();
      wills.push(will);
    }
    for (const w of wills) assert.equal((await w).payload.toString(), 'gone');
    await waitFor(() => proxy.connectionCount() === 0, 5000, 'the sessions to close');
    const now = held();
    assert.equal(now.byClients, before.byClients, 'no proxy port toward the broker in TIME_WAIT');
    assert.equal(now.byBroker, before.byBroker, 'reset: no TIME_WAIT on the broker either');
  });
});
