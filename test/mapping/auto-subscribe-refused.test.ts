/**
 * The Connector route subscribes each device north to its own Thng's properties, in the
 * CONNECT's write. A north broker that refuses that subscription (SUBACK 0x80) leaves the
 * device without downlinks: the proxy says so in a warning, and the device's uplinks still
 * go through. MQTT.js device → proxy → aedes whose `authorizeSubscribe` refuses (mosquitto
 * 2.0 grants every subscription and applies its ACL on delivery, so it cannot refuse one).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, describe, test } from 'node:test';
import { createLogger } from '../../src/log/logger.js';
import { startAedes } from '../emulators/aedes-server.js';
import {
  closeAll,
  collect,
  connectClient,
  type MqttClient,
  publish,
  subscribe,
  waitFor,
} from '../helpers/clients.js';
import { startTestProxy } from '../helpers/proxy.js';
import { MAPPINGS_DIR } from './shipped.js';

const TOKEN = 'c0ffee5e948b94841820ea50868a2490632d78f';
const API_KEY = 'evt-api-key-acl-0123456789';

/** A north broker that takes the device's API key and, with `refuse`, refuses its subscriptions. */
async function rig(refuse: boolean) {
  const dir = await mkdtemp(join(tmpdir(), 'mdp-acl-'));
  const credentials = join(dir, 'credentials.yaml');
  await writeFile(
    credentials,
    `- south: { deviceId: "777", token: "${TOKEN}" }\n  north: { thngId: UACL, apiKey: "${API_KEY}" }\n`,
    { mode: 0o600 },
  );
  const observerId = `obs-acl-${refuse}`;
  const broker = await startAedes({
    authenticate: (client, username, password, done) =>
      done(null, client.id === observerId || (username === 'authorization' && String(password) === API_KEY)),
    authorizeSubscribe: (client, sub, done) =>
      // A null subscription is a refusal (SUBACK 128); an error would close the connection.
      refuse && client?.id !== observerId ? done(null, null) : done(null, sub),
  });
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n')) if (l.trim()) lines.push(JSON.parse(l));
      done();
    },
  });
  const proxy = await startTestProxy(
    {
      north: { url: broker.url },
      mapping: { dir: MAPPINGS_DIR, route: 'connector-to-evrythng', credentials },
    },
    { logger: createLogger({ level: 'warn', format: 'json', destination: sink }) },
  );
  const observer = await connectClient(broker.url, { clientId: observerId });
  const clients: MqttClient[] = [observer];
  const device = async () => {
    const c = await connectClient(proxy.url, {
      clientId: '777',
      username: '777',
      password: TOKEN,
      protocolVersion: 4,
      reconnectPeriod: 0,
    });
    clients.push(c);
    return c;
  };
  const refusals = () => lines.filter((l) => String(l.msg).startsWith('north broker refused an automatic'));
  const stop = async () => {
    await closeAll(clients);
    await proxy.close();
    await broker.stop();
    await rm(dir, { recursive: true, force: true });
  };
  return { observer, device, refusals, stop };
}

describe('automatic north subscription refused by the broker', () => {
  const stops: Array<() => Promise<void>> = [];
  after(async () => {
    for (const s of stops) await s();
  });

  test("a warning gives the route and the refused filter's shape; the device stays connected, its uplinks arrive", async () => {
    const r = await rig(true);
    stops.push(r.stop);
    await subscribe(r.observer, '/thngs/UACL/properties/#', { qos: 1 });
    const dev = await r.device();
    await waitFor(() => r.refusals().length === 1, 5000, 'the warning');
    const w = r.refusals()[0] ?? {};
    assert.equal(w.level, 40, 'at warn level');
    // The filter's shape, never the filter (filters of other platforms carry secrets).
    assert.deepEqual(w.refused, ['5 levels, first: thngs']);
    assert.equal(w.route, 'connector-to-evrythng');
    assert.doesNotMatch(JSON.stringify(w), /UACL/);
    const seen = collect(r.observer, '/thngs/UACL/properties/temp', 1);
    await publish(dev, '$resource/temp', '21', { qos: 1 });
    const [m] = await seen;
    assert.equal((JSON.parse(String(m?.payload)) as Array<{ value: number }>)[0]?.value, 21);
    assert.equal(dev.connected, true);
  });

  test('granted: no warning, and platform updates reach the device', async () => {
    const r = await rig(false);
    stops.push(r.stop);
    const dev = await r.device();
    let got: string | undefined;
    dev.on('message', (topic, payload) => {
      if (topic === '$resource/temp') got = payload.toString();
    });
    await subscribe(dev, '$resource/#', { qos: 0 });
    // The proxy subscribes north in the CONNECT's write; repeat until the SUBACK has been taken.
    for (let i = 0; i < 20 && got === undefined; i++) {
      await publish(r.observer, '/thngs/UACL/properties/temp', '[{"value":5}]', { qos: 1 });
      await new Promise((res) => setTimeout(res, 100));
    }
    assert.equal(got, '5');
    assert.deepEqual(r.refusals(), []);
  });
});
