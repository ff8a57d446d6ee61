/**
 * Secrets never reach logs or metrics, end to end: a Connector device (token) goes through
 * the connector-to-akenza route to an akenza-like north broker (aedes), whose uplink secret
 * travels in the CONNECT password and inside every topic. With the proxy logging at trace
 * level, the token, the secret and a wrong password must appear in no log line, no metric
 * and no error text; the north side proves they really flowed.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createLogger } from '../../src/log/logger.js';
import { type AedesServer, startAedes } from '../emulators/aedes-server.js';
import {
  closeAll,
  connectClient,
  type MqttClient,
  publish,
  tryConnect,
  waitClosed,
} from '../helpers/clients.js';
import { startTestProxy, type TestProxy } from '../helpers/proxy.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
// From mappings/credentials/connector-akenza.yaml: device 12345 and its token.
const DEVICE = '12345';
const TOKEN = 'b7b34f55e948b94841820ea50868a2490632d78f';
const SECRET = 'akenzaS3cretForOpsTest';
const WRONG = 'wrongTokenTotallySecret99';

const logLines: string[] = [];
const north: { server?: AedesServer; passwords: string[]; topics: string[] } = { passwords: [], topics: [] };
let proxy: TestProxy | undefined;
let savedSecret: string | undefined;
const clients: MqttClient[] = [];

before(async () => {
  savedSecret = process.env.AKENZA_SECRET;
  process.env.AKENZA_SECRET = SECRET;
  north.server = await startAedes({
    authenticate: (_client, _username, password, cb) => {
      north.passwords.push(password?.toString() ?? '');
      cb(null, true);
    },
  });
  north.server.broker.on('publish', (p, client) => {
    if (client) north.topics.push(p.topic);
  });
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      logLines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      cb();
    },
  });
  proxy = await startTestProxy(
    { north: { url: north.server.url }, mapping: { dir: `${root}mappings`, route: 'connector-to-akenza' } },
    { logger: createLogger({ level: 'trace', format: 'json', destination }) },
  );
});

after(async () => {
  await closeAll(clients);
  await proxy?.close(1000);
  await north.server?.stop();
  if (savedSecret === undefined) delete process.env.AKENZA_SECRET;
  else process.env.AKENZA_SECRET = savedSecret;
});

test('token, uplink secret and refused passwords appear in no log line and no metric', async () => {
  const p = proxy as TestProxy;
  const device = await connectClient(p.url, {
    clientId: DEVICE,
    username: DEVICE,
    password: TOKEN,
    protocolVersion: 4,
  });
  clients.push(device);
  await publish(device, '$resource/temperature', '21.5', { qos: 1 });
  await publish(device, '$resource', '{"humidity":40,"state":"on"}', { qos: 0 });
  await publish(device, '$resource/temperature', '22', { qos: 1 });

  // A refused device: wrong token.
  const refused = await tryConnect(p.url, {
    clientId: DEVICE,
    username: DEVICE,
    password: WRONG,
    protocolVersion: 4,
  });
  assert.ok(refused.closed, 'a wrong token is refused');

  // A publish outside the dialect's fixed topics: the Connector rule disconnects the device.
  const rogue = await connectClient(p.url, {
    clientId: DEVICE,
    username: DEVICE,
    password: TOKEN,
    protocolVersion: 4,
  });
  clients.push(rogue);
  const closed = waitClosed(rogue, 10_000);
  rogue.publish(`not/a/connector/topic/${TOKEN}`, 'x', { qos: 0 });
  await closed;

  // The secrets really flowed north: in the CONNECT password and inside the topics.
  assert.ok(north.passwords.includes(SECRET), 'the north CONNECT carried the uplink secret');
  assert.ok(
    north.topics.some((t) => t.includes(`/up/${SECRET}/id/${DEVICE}`)),
    `uplink topics carry the secret (${north.topics.length} north publishes)`,
  );

  const scrape = await (await fetch(`${p.metricsUrl}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
  assert.ok(logLines.length > 5, `the proxy logged (${logLines.length} lines)`);
  assert.match(scrape, /mqtt_proxy_messages_total\{[^}]*route="connector-to-akenza"/);
  for (const secret of [TOKEN, SECRET, WRONG]) {
    assert.ok(!scrape.includes(secret), 'a secret appears in /metrics');
    const leaking = logLines.filter((l) => l.includes(secret));
    assert.deepEqual(leaking, [], 'a secret appears in the log');
  }
  const labelValues = [...scrape.matchAll(/="([^"]*)"/g)].map((m) => m[1] as string);
  assert.ok(labelValues.length > 20);
  assert.ok(!labelValues.some((v) => v.includes(DEVICE)), 'no device id in metric labels');
});
