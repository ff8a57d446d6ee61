/**
 * Every topic of the EVRYTHNG Pub/Sub spec through the proxy, with real MQTT.js clients, onto
 * the EVRYTHNG emulator (aedes, scoped API keys). The route maps EVRYTHNG onto itself: devices
 * keep their own API keys south, the proxy connects north with the platform key of their
 * record, and the mapping keeps each key within what its record names (its Thng, product,
 * collection, batch; account-wide topics only for a key that names an account). The north key
 * is an operator key, so anything the proxy let through would reach the emulator: what is
 * refused here is refused by the proxy.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type EvrythngPlatform, startEvrythngPlatform } from '../emulators/evrythng-platform.js';
import {
  closeAll,
  connectClient,
  gather,
  type MqttClient,
  nextMessage,
  publish,
  subscribe,
} from '../helpers/clients.js';
import type { TestProxy } from '../helpers/proxy.js';
import { type MappingsDir, mappingsDir, proxyFor } from './connector-env.js';

const NORTH_KEY = 'evt-platform-operator-key-0123456789';
const KEY_A = 'evt-device-a-key-0123456789abcdef';
const KEY_B = 'evt-device-b-key-0123456789abcdef';
const KEY_APP = 'evt-application-key-0123456789abcd';
const TS = 1_700_000_000_123;

/** Topics key A reaches, with a payload of the spec's shape for each. */
const A_TOPICS: Array<[string, unknown]> = [
  ['/thngs/T1', { name: 'Thermostat', tags: ['kitchen'] }],
  ['/thngs/T1/properties/temp', [{ value: 21.5, timestamp: TS }]],
  ['/thngs/T1/properties', [{ key: 'mode', value: 'eco', timestamp: TS }]],
  ['/thngs/T1/actions/scans', { type: 'scans', customFields: { n: 1 } }],
  ['/thngs/T1/actions/all', { type: '_activated' }],
  ['/thngs/T1/location', [{ position: { type: 'Point', coordinates: [-0.1, 51.5] } }]],
  ['/products/P1/properties/colour', [{ value: 'red', timestamp: TS }]],
  ['/products/P1/properties', [{ key: 'size', value: 'L', timestamp: TS }]],
  ['/products/P1/actions/scans', { type: 'scans' }],
  ['/products/P1/actions/all', { type: 'scans' }],
  ['/collections/C1', { name: 'Kitchen' }],
  ['/collections/C1/thngs', ['T1']],
  ['/collections/C1/actions/scans', { type: 'scans' }],
  ['/collections/C1/actions/all', { type: 'scans' }],
];

/** The same shapes on resources key A's record does not name. */
const FOREIGN: string[] = [
  '/thngs/T2',
  '/thngs/T2/properties/temp',
  '/thngs/T2/properties',
  '/thngs/T2/actions/scans',
  '/thngs/T2/actions/all',
  '/thngs/T2/location',
  '/products/P2/properties/colour',
  '/products/P2/actions/all',
  '/collections/C2',
  '/collections/C2/thngs',
  '/collections/C2/actions/scans',
  '/actions/scans',
  '/actions/all',
  '/actions',
];

describe('EVRYTHNG: every topic of the spec, each key within its scope', () => {
  let platform: EvrythngPlatform;
  let mappings: MappingsDir;
  let proxy: TestProxy;
  const clients: MqttClient[] = [];

  before(async () => {
    platform = await startEvrythngPlatform({
      keys: [{ key: NORTH_KEY, label: 'proxy', operator: true }],
    });
    mappings = mappingsDir({
      'routes/test-evt-evt.yaml': [
        'route: test-evt-evt',
        'south: evrythng',
        'north: evrythng',
        'identity:',
        '  file: credentials/test-evt-evt.yaml',
        '  key: apiKey',
        '',
      ].join('\n'),
      'credentials/test-evt-evt.yaml': [
        `- south: { apiKey: "${KEY_A}", thngId: T1, productId: P1, collectionId: C1, batchId: B1 }`,
        `  north: { apiKey: "${NORTH_KEY}" }`,
        `- south: { apiKey: "${KEY_B}", thngId: T2 }`,
        `  north: { apiKey: "${NORTH_KEY}" }`,
        `- south: { apiKey: "${KEY_APP}", account: acme }`,
        `  north: { apiKey: "${NORTH_KEY}" }`,
        '',
      ].join('\n'),
    });
    proxy = await proxyFor(platform, mappings, 'test-evt-evt');
  });

  after(async () => {
    await closeAll(clients);
    await proxy?.close();
    await platform?.stop();
    mappings?.cleanup();
  });

  const evt = async (key: string) => {
    const c = await connectClient(proxy.url, { username: 'authorization', password: key });
    clients.push(c);
    return c;
  };

  const northOf = (topic: string) => platform.published.filter((p) => p.topic === topic);

  it('publishes on every Thng, product and collection topic reach the platform unchanged', async () => {
    const a = await evt(KEY_A);
    for (const [topic, body] of A_TOPICS) await publish(a, topic, JSON.stringify(body), { qos: 1 });
    await platform.waitFor(
      () => A_TOPICS.every(([t]) => northOf(t).length > 0),
      5000,
      'every topic published north',
    );
    for (const [topic, body] of A_TOPICS) {
      const got = northOf(topic);
      assert.equal(got.length, 1, `${topic}: one publish north`);
      assert.equal(got[0]?.label, 'proxy', `${topic}: with the platform key`);
      assert.deepEqual(JSON.parse(got[0]?.payload ?? 'null'), body, `${topic}: same document`);
    }
  });

  it('account-wide topics: an application key whose record names an account', async () => {
    const app = await evt(KEY_APP);
    const topics: Array<[string, unknown]> = [
      ['/actions', { name: 'scans', description: 'an action type' }],
      ['/actions/scans', { type: 'scans', thng: 'T1' }],
      ['/actions/all', { type: 'scans', thng: 'T1' }],
    ];
    for (const [topic, body] of topics) await publish(app, topic, JSON.stringify(body), { qos: 1 });
    await platform.waitFor(() => topics.every(([t]) => northOf(t).length > 0), 5000, 'account topics');
    for (const [topic, body] of topics)
      assert.deepEqual(JSON.parse(northOf(topic)[0]?.payload ?? 'null'), body, topic);
    // Subscriptions too: an action created anywhere in the account reaches it.
    await subscribe(app, '/actions/all', { qos: 1 });
    const got = nextMessage(app, '/actions/all');
    platform.publish('/actions/all', JSON.stringify({ type: 'scans', id: 'A9' }));
    assert.deepEqual(JSON.parse((await got).payload.toString()), { type: 'scans', id: 'A9' });
  });

  it('nothing outside a key’s scope reaches the platform (device key A on T2, P2, C2, account topics)', async () => {
    const a = await evt(KEY_A);
    const before = platform.published.length;
    for (const topic of FOREIGN) await publish(a, topic, JSON.stringify({ type: 'x' }), { qos: 1 });
    // A marker published last, in scope: once it is north, everything before it was decided.
    await publish(a, '/thngs/T1/properties/marker', JSON.stringify([{ value: 1, timestamp: TS }]), {
      qos: 1,
    });
    await platform.waitFor(() => northOf('/thngs/T1/properties/marker').length > 0, 5000, 'marker');
    const leaked = platform.published.slice(before).filter((p) => p.topic !== '/thngs/T1/properties/marker');
    assert.deepEqual(leaked, []);
    assert.ok(a.connected, 'a refused publish is dropped, the client stays connected');
  });

  it('the platform’s notifications on every subscribable topic reach the subscriber on that topic', async () => {
    const a = await evt(KEY_A);
    const downs: Array<[string, unknown]> = [
      ...A_TOPICS,
      ['/collections/C1/thngs', { operation: 'thngsAdded', timestamp: TS, resources: ['T1', 'T7'] }],
      ['/batches/B1/tasks', { id: 'TK1', status: 'EXECUTED' }],
      ['/batches/B1/tasks/TK1', { id: 'TK1', status: 'EXECUTED' }],
    ];
    const topics = [...new Set(downs.map(([t]) => t))];
    const granted = await subscribe(a, topics, { qos: 1 });
    assert.deepEqual(
      granted.map((g) => g.qos),
      topics.map(() => 1),
    );
    for (const [topic, body] of downs) {
      const got = nextMessage(a, topic);
      platform.publish(topic, JSON.stringify(body), 1);
      const m = await got;
      assert.equal(m.topic, topic);
      assert.deepEqual(JSON.parse(m.payload.toString()), body, topic);
    }
  });

  it('a subscription outside the key’s scope is silent: granted, nothing delivered; its owner gets it', async () => {
    const a = await evt(KEY_A);
    const b = await evt(KEY_B);
    const foreign = ['/thngs/T2/properties/temp', '/thngs/T2', '/actions/all', '/collections/C2/thngs'];
    const granted = await subscribe(a, foreign, { qos: 1 });
    assert.ok(
      granted.every((g) => g.qos < 0x80),
      'granted, as the platform does',
    );
    await subscribe(b, '/thngs/T2/properties/temp', { qos: 1 });
    const watchA = gather(a, '#', 600);
    const toB = nextMessage(b, '/thngs/T2/properties/temp');
    for (const t of foreign) platform.publish(t, JSON.stringify([{ value: 5, timestamp: TS }]));
    assert.deepEqual(JSON.parse((await toB).payload.toString()), [{ value: 5, timestamp: TS }]);
    assert.deepEqual(
      (await watchA).map((m) => m.topic),
      [],
    );
  });
});
