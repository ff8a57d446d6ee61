/**
 * Records naming many devices for one login (route foxtrackr-to-evrythng, an application
 * account): the device index, the expansion of a south filter into the devices it covers,
 * the north subscriptions and deliveries of a FleetSession, and the errors `check` reports
 * for the record shape. Pure: no sockets.
 */
import assert from 'node:assert/strict';
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { IConnectPacket, ISubscribePacket } from 'mqtt-packet';
import { main as check } from '../../src/cli/check.js';
import type { SessionMapper, SubscribePlan } from '../../src/core/contract.js';
import { EchoScope } from '../../src/mapping/echo-scope.js';
import { createDialectRoute } from '../../src/mapping/engine.js';
import { compileFleet, expandFilter, fleetErrors, fleetLayout } from '../../src/mapping/fleet-index.js';
import { CredentialsIndex } from '../../src/mapping/identity.js';
import { loadMappings } from '../../src/mapping/load.js';
import { parseCredentials } from '../../src/routes/credentials.js';
import { subackCodes } from '../../src/session/accounting.js';
import { NOW_US, pub } from './session-kit.js';
import { MAPPINGS_DIR, shippedMappings } from './shipped.js';

const m = loadMappings(shippedMappings());
const spec = m.routes.get('foxtrackr-to-evrythng');
assert.ok(spec);
const plan = spec.plan;
const layout = fleetLayout(plan);
assert.ok(layout, 'foxtrackr names its devices in its topics');

const DEVICES = [
  { deviceId: '777', thngId: 'UXYZ777' },
  { deviceId: '778', thngId: 'UXYZ778' },
  { deviceId: '779', thngId: 'UXYZ779' },
];
const fleet = compileFleet({ devices: DEVICES, groups: { my_group: ['777', '778'] } });

describe('a south filter expanded into the devices it covers', () => {
  const cases: Array<[string, 'all' | number[] | undefined, string | undefined, string | undefined]> = [
    // filter, devices, group, the filter as device 777 takes it
    ['foxtrackr/#', 'all', undefined, 'foxtrackr/777/#'],
    ['#', 'all', undefined, 'foxtrackr/777/#'],
    ['+/#', 'all', undefined, 'foxtrackr/777/#'],
    ['foxtrackr/+/V3.0/+', 'all', undefined, 'foxtrackr/777/V3.0/+'],
    ['foxtrackr/+/V3.0/bat', 'all', undefined, 'foxtrackr/777/V3.0/bat'],
    ['+/+/V3.0/bat', 'all', undefined, 'foxtrackr/777/V3.0/bat'],
    ['foxtrackr/777/V3.0/bat', [0], undefined, 'foxtrackr/777/V3.0/bat'],
    ['foxtrackr/778/#', [1], undefined, 'foxtrackr/777/#'],
    ['foxtrackr/my_group/V3.0/bat', [0, 1], 'my_group', 'foxtrackr/777/V3.0/bat'],
    ['foxtrackr/999/V3.0/bat', undefined, undefined, undefined],
    ['foxtrackr/other_group/#', undefined, undefined, undefined],
    ['other/#', undefined, undefined, undefined],
    ['foxtrackr', undefined, undefined, undefined],
    // Not filters: '#' before another level (a device's own session refuses foxtrackr/777/#/x).
    ['#/x', undefined, undefined, undefined],
    ['foxtrackr/#/x', undefined, undefined, undefined],
    ['+/#/V3.0', undefined, undefined, undefined],
  ];
  for (const [filter, devices, group, internal] of cases) {
    it(`${filter} → ${JSON.stringify(devices ?? 'none')}`, () => {
      const c = expandFilter(layout, fleet, filter.split('/'));
      if (devices === undefined) {
        assert.equal(c, undefined);
        return;
      }
      assert.ok(c);
      assert.deepEqual(c.devices, devices);
      assert.equal(c.group, group);
      assert.equal(c.internal('777'), internal);
    });
  }

  it('finds one device among 10,000 without a scan (index), and covers all of them with a wildcard', () => {
    const many = compileFleet({
      devices: Array.from({ length: 10_000 }, (_, i) => ({ deviceId: `d${i}`, thngId: `T${i}` })),
    });
    // The devices list is never read once compiled: a lookup goes through the index alone.
    const devices = new Proxy(many.devices, {
      get: (t, k) => {
        if (typeof k === 'string' && /^\d+$/.test(k)) throw new Error(`device ${k} read: a scan`);
        return Reflect.get(t, k);
      },
    });
    const indexed = { ...many, devices };
    for (let i = 0; i < 10_000; i += 97)
      assert.deepEqual(expandFilter(layout, indexed, ['foxtrackr', `d${i}`, 'V3.0', 'bat'])?.devices, [i]);
    assert.equal(expandFilter(layout, indexed, ['foxtrackr', 'nobody', '#']), undefined);
    assert.deepEqual(expandFilter(layout, many, ['foxtrackr', 'd9999', '#'])?.devices, [9999]);
    assert.equal(expandFilter(layout, many, ['foxtrackr', '#'])?.devices, 'all');
  });
});

describe('echo scope: which north topics the held filters cover, by their literal heads', () => {
  const filters = ['/thngs/T1/properties/+', '/thngs/T2/properties/battery', '+/x', 'a/#', '/other/#', 'b'];
  const cases: Array<[string, boolean]> = [
    ['/thngs/T1/properties/battery', true],
    ['/thngs/T1/properties', false],
    ['/thngs/T2/properties/battery', true],
    ['/thngs/T2/properties/temperature', false],
    ['/thngs/T3/properties/battery', false],
    ['/other/T3/properties/battery', true],
    ['q/x', true], // '+/x'
    ['a', true], // 'a/#' covers its parent
    ['a/b/c', true],
    ['b', true],
    ['b/c', false],
    ['c', false],
  ];
  for (const [topic, covered] of cases) {
    it(`${topic} → ${covered}`, () => {
      const scope = new EchoScope(false);
      for (const f of filters) scope.hold(f);
      assert.equal(scope.covers(topic), covered);
    });
  }

  it('a filter released no longer covers; 10,000 held filters are not scanned per topic', () => {
    const scope = new EchoScope(false);
    for (let i = 0; i < 10_000; i++) scope.hold(`/thngs/T${i}/properties/+`);
    scope.release('/thngs/T7/properties/+');
    // A topic is answered from the filters its prefixes name: the list of every held filter
    // is not walked (the time per topic with 10 and 10,000 filters: `npm run bench:mapping`).
    const held = (scope as unknown as { held: Map<string, string[]> }).held;
    held.values = () => assert.fail('every held filter scanned for one topic');
    held.forEach = () => assert.fail('every held filter scanned for one topic');
    held[Symbol.iterator] = () => assert.fail('every held filter scanned for one topic');
    assert.equal(scope.covers('/thngs/T7/properties/battery'), false);
    assert.equal(scope.covers('/thngs/T8/properties/battery'), true);
    assert.equal(scope.covers('/thngs/T9999/properties/k'), true);
    assert.equal(scope.covers('/thngs/T10000/properties/k'), false);
  });
});

const base: IConnectPacket = {
  cmd: 'connect',
  protocolVersion: 4,
  clientId: 'id-given-01',
  keepalive: 60,
  clean: false,
};
const FLEET_RECORD = {
  south: { username: 'fleet-app', password: 'fleet-pw' },
  north: { apiKey: 'KEY' },
  fleet: { devices: DEVICES, groups: { my_group: ['777', '778'] } },
};

async function fleetSession(
  records = [FLEET_RECORD],
): Promise<{ mapper: SessionMapper; connect: IConnectPacket }> {
  const r = createDialectRoute({
    name: 'foxtrackr-to-evrythng',
    plan,
    identity: new CredentialsIndex(records),
    nowUs: () => NOW_US,
  });
  const d = await r.openSession({
    connect: { ...base, username: 'fleet-app', password: Buffer.from('fleet-pw') },
    listener: 'tcp',
  });
  assert.ok(d.accept, d.accept ? '' : d.reason);
  assert.ok(d.north.mode === 'direct');
  return { mapper: d.mapper, connect: d.north.connect };
}

const sub = (...topics: string[]): ISubscribePacket => ({
  cmd: 'subscribe',
  messageId: 1,
  subscriptions: topics.map((topic) => ({ topic, qos: 1 })),
});
const northOf = (p: SubscribePlan) => p.north.map((n) => n.topic).sort();
const update = (thng: string, key: string, body: unknown) =>
  pub(`/thngs/${thng}/properties/${key}`, JSON.stringify([{ value: body, timestamp: 1700000000000 }]));

describe('one login, many devices (FleetSession)', () => {
  it('connects north once, with the login API key and the client id of the application', async () => {
    const { connect } = await fleetSession();
    assert.equal(connect.username, 'authorization');
    assert.equal(connect.password?.toString(), 'KEY');
    assert.equal(connect.clientId, 'id-given-01');
    assert.equal(connect.clean, false);
  });

  const subs: Array<[string[], string[], Array<'from' | number>]> = [
    // south filters, north filters, grant kinds
    [
      ['foxtrackr/#'],
      ['/thngs/UXYZ777/properties/+', '/thngs/UXYZ778/properties/+', '/thngs/UXYZ779/properties/+'],
      ['from'],
    ],
    [
      ['foxtrackr/+/V3.0/bat'],
      [
        '/thngs/UXYZ777/properties/battery',
        '/thngs/UXYZ778/properties/battery',
        '/thngs/UXYZ779/properties/battery',
      ],
      ['from'],
    ],
    [['foxtrackr/777/V3.0/bat'], ['/thngs/UXYZ777/properties/battery'], ['from']],
    [['foxtrackr/778/#'], ['/thngs/UXYZ778/properties/+'], ['from']],
    [
      ['foxtrackr/my_group/V3.0/temp'],
      ['/thngs/UXYZ777/properties/temperature', '/thngs/UXYZ778/properties/temperature'],
      ['from'],
    ],
    [['foxtrackr/999/V3.0/bat', 'foxtrackr/nogroup/#', 'elsewhere/#'], [], [0x80, 0x80, 0x80]],
    // Devices covered, but a device filter no device may take.
    [['foxtrackr/+/V9.9/bat', 'foxtrackr/my_group/V3.0/bat/more'], [], [0x80, 0x80]],
  ];
  for (const [filters, north, grants] of subs) {
    it(`SUBSCRIBE ${filters.join(' ')} → ${north.length} north filters`, async () => {
      const { mapper } = await fleetSession();
      const p = mapper.subscribe(sub(...filters));
      assert.deepEqual(northOf(p), north);
      assert.deepEqual(
        p.granted.map((g) => ('from' in g ? 'from' : g.code)),
        grants,
      );
    });
  }

  it("delivers a Thng's property update as its device's envelope, on its topic", async () => {
    const { mapper } = await fleetSession();
    mapper.subscribe(sub('foxtrackr/+/V3.0/bat'));
    const o = mapper.downlink(update('UXYZ778', 'battery', { level: 50 }));
    assert.equal(o.verdict, 'continue');
    assert.deepEqual(
      o.south?.map((s) => s.topic),
      ['foxtrackr/778/V3.0/bat'],
    );
    assert.deepEqual(JSON.parse(o.south?.[0]?.payload.toString() ?? ''), {
      version: 3,
      deviceId: '778',
      timeMs: 1700000000000,
      battery: { level: 50 },
    });
    // Not subscribed: temperature; a Thng of no device of the login.
    assert.equal(mapper.downlink(update('UXYZ778', 'temperature', { c: 1 })).reason, 'not_subscribed');
    assert.equal(mapper.downlink(update('UXYZOTHER', 'battery', { level: 1 })).reason, 'foreign_identity');
  });

  it('group filters deliver on the group topic; foxtrackr/# on the device topic; both when both are subscribed', async () => {
    const { mapper } = await fleetSession();
    mapper.subscribe(sub('foxtrackr/my_group/V3.0/bat'));
    const topics = (thng: string) =>
      mapper.downlink(update(thng, 'battery', { level: 1 })).south?.map((s) => s.topic);
    assert.deepEqual(topics('UXYZ777'), ['foxtrackr/my_group/V3.0/bat']);
    assert.equal(topics('UXYZ779'), undefined, 'not in the group');
    mapper.subscribe(sub('foxtrackr/#'));
    assert.deepEqual(topics('UXYZ777'), ['foxtrackr/777/V3.0/bat', 'foxtrackr/my_group/V3.0/bat']);
    assert.deepEqual(topics('UXYZ779'), ['foxtrackr/779/V3.0/bat']);
    // Overlapping filters of one kind give one message.
    mapper.subscribe(sub('foxtrackr/+/V3.0/bat', 'foxtrackr/779/#'));
    assert.deepEqual(topics('UXYZ779'), ['foxtrackr/779/V3.0/bat']);
  });

  it('UNSUBSCRIBE undoes exactly what its SUBSCRIBE did (north filters shared by another filter stay)', async () => {
    const { mapper } = await fleetSession();
    mapper.subscribe(sub('foxtrackr/+/V3.0/bat'));
    mapper.subscribe(sub('foxtrackr/777/V3.0/bat'));
    mapper.subscribe(sub('foxtrackr/my_group/V3.0/bat'));
    assert.deepEqual(
      mapper.unsubscribe({ cmd: 'unsubscribe', messageId: 2, unsubscriptions: ['foxtrackr/+/V3.0/bat'] })
        .north,
      ['/thngs/UXYZ779/properties/battery'],
    );
    // 777 is still wanted by its own filter and the group's; 778 by the group's.
    assert.equal(mapper.downlink(update('UXYZ779', 'battery', {})).reason, 'not_subscribed');
    assert.deepEqual(
      mapper.downlink(update('UXYZ777', 'battery', {})).south?.map((s) => s.topic),
      ['foxtrackr/777/V3.0/bat', 'foxtrackr/my_group/V3.0/bat'],
    );
    assert.deepEqual(
      mapper.unsubscribe({
        cmd: 'unsubscribe',
        messageId: 3,
        unsubscriptions: ['foxtrackr/my_group/V3.0/bat'],
      }).north,
      ['/thngs/UXYZ778/properties/battery'],
    );
    assert.deepEqual(
      mapper.unsubscribe({ cmd: 'unsubscribe', messageId: 4, unsubscriptions: ['foxtrackr/777/V3.0/bat'] })
        .north,
      ['/thngs/UXYZ777/properties/battery'],
    );
  });

  it('a north filter two client filters need is subscribed at the higher QoS, each granted at most what it asked', async () => {
    const { mapper } = await fleetSession();
    const at = (p: SubscribePlan) => Object.fromEntries(p.north.map((n) => [n.topic, n.qos]));
    const qos = (qos: 0 | 1 | 2, topic: string): ISubscribePacket => ({
      cmd: 'subscribe',
      messageId: 1,
      subscriptions: [{ topic, qos }],
    });
    assert.deepEqual(at(mapper.subscribe(qos(2, 'foxtrackr/777/V3.0/bat'))), {
      '/thngs/UXYZ777/properties/battery': 2,
    });
    assert.deepEqual(at(mapper.subscribe(qos(0, 'foxtrackr/+/V3.0/bat'))), {
      '/thngs/UXYZ777/properties/battery': 2,
      '/thngs/UXYZ778/properties/battery': 0,
      '/thngs/UXYZ779/properties/battery': 0,
    });
    mapper.subscribe(qos(2, 'foxtrackr/778/#'));
    const p = mapper.subscribe(qos(1, 'foxtrackr/778/V3.0/+'));
    assert.deepEqual(at(p), { '/thngs/UXYZ778/properties/+': 2 });
    assert.deepEqual(subackCodes(p, [2], 4), [1]);
    // Subscribed again at 0, the only filter wanting it at 2 lowers it.
    assert.deepEqual(at(mapper.subscribe(qos(0, 'foxtrackr/778/#'))), { '/thngs/UXYZ778/properties/+': 1 });
  });

  it('a filter over several devices is granted when any of them is; a device filter fails with its one', async () => {
    const { mapper } = await fleetSession();
    const sub = (topic: string): SubscribePlan =>
      mapper.subscribe({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 1 }] });
    const all = sub('foxtrackr/+/V3.0/bat');
    assert.equal(all.north.length, 3);
    // The platform refuses one Thng (its API key cannot read it): the other two still come.
    assert.deepEqual(subackCodes(all, [1, 0x80, 1], 4), [1]);
    assert.deepEqual(subackCodes(all, [0x80, 0, 1], 4), [0]);
    assert.deepEqual(subackCodes(all, [0x80, 0x80, 0x80], 4), [0x80], 'all refused: refused');
    assert.deepEqual(subackCodes(all, [0x87, 0x80, 0x80], 5), [0x87], 'v5: the first reason code');
    const one = sub('foxtrackr/777/V3.0/bat');
    assert.deepEqual(subackCodes(one, [0x80], 4), [0x80]);
    const group = sub('foxtrackr/my_group/V3.0/bat');
    assert.deepEqual(subackCodes(group, [0x80, 1], 4), [1], 'a group is several devices too');
  });

  it('each copy goes at the highest QoS of the filters that match its topic, not above', async () => {
    const { mapper } = await fleetSession();
    const at = (qos: 0 | 1 | 2, topic: string) =>
      mapper.subscribe({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos }] });
    at(0, 'foxtrackr/#');
    at(2, 'foxtrackr/my_group/V3.0/bat');
    const battery = (thng: string) =>
      mapper
        .downlink(pub(`/thngs/${thng}/properties/battery`, '[{"value":{"level":1},"timestamp":5}]', 2))
        .south?.map((o) => [o.topic, o.qos]);
    // The north filter is held at 2 for the group's filter; the device's topic was asked at 0.
    assert.deepEqual(battery('UXYZ777'), [
      ['foxtrackr/777/V3.0/bat', 0],
      ['foxtrackr/my_group/V3.0/bat', 2],
    ]);
    at(1, 'foxtrackr/777/V3.0/+');
    assert.deepEqual(battery('UXYZ777'), [
      ['foxtrackr/777/V3.0/bat', 1],
      ['foxtrackr/my_group/V3.0/bat', 2],
    ]);
    assert.deepEqual(battery('UXYZ779'), [['foxtrackr/779/V3.0/bat', 0]]);
  });

  it('UNSUBSCRIBE of a filter an earlier connection made (persistent north) releases its north filters but those still held', async () => {
    const { mapper } = await fleetSession();
    mapper.subscribe(sub('foxtrackr/778/V3.0/+'));
    const unsub = (t: string) =>
      mapper.unsubscribe({ cmd: 'unsubscribe', messageId: 2, unsubscriptions: [t] });
    // 778's /properties/+ is needed by this connection's foxtrackr/778/V3.0/+.
    assert.deepEqual(unsub('foxtrackr/#').north.sort(), [
      '/thngs/UXYZ777/properties/+',
      '/thngs/UXYZ779/properties/+',
    ]);
    assert.deepEqual(unsub('foxtrackr/my_group/V3.0/bat').north.sort(), [
      '/thngs/UXYZ777/properties/battery',
      '/thngs/UXYZ778/properties/battery',
    ]);
    assert.deepEqual(unsub('foxtrackr/999/#').north, []);
    assert.deepEqual(unsub('foxtrackr/778/V3.0/+').north, ['/thngs/UXYZ778/properties/+']);
  });

  it("a publish to a device's topic goes to its Thng; another device's is dropped", async () => {
    const { mapper } = await fleetSession();
    const env = (id: string) =>
      JSON.stringify({ messageType: 1, deviceId: id, version: 3, timeMs: 5, battery: { level: 9 } });
    const o = await mapper.uplink(pub('foxtrackr/778/V3.0/bat', env('778')));
    assert.deepEqual(
      o.north?.map((n) => n.topic),
      ['/thngs/UXYZ778/properties/battery'],
    );
    const other = await mapper.uplink(pub('foxtrackr/999/V3.0/bat', env('999')));
    assert.equal(other.verdict, 'drop');
    assert.equal(other.reason, 'foreign_identity');
    const group = await mapper.uplink(pub('foxtrackr/my_group/V3.0/bat', env('777')));
    assert.equal(group.verdict, 'drop');
  });

  it('drops its own uplinks coming back from a Thng it subscribed to (echo)', async () => {
    const { mapper } = await fleetSession();
    mapper.subscribe(sub('foxtrackr/#'));
    mapper.onNorthConnack?.(false);
    const body = JSON.stringify({
      messageType: 1,
      deviceId: '778',
      version: 3,
      timeMs: 5,
      battery: { level: 9 },
    });
    const o = await mapper.uplink(pub('foxtrackr/778/V3.0/bat', body));
    const back = o.north?.[0];
    assert.ok(back);
    assert.equal(mapper.downlink(pub(back.topic, back.payload)).reason, 'echo');
  });

  it('before the application subscribes again, what the persistent north session kept is delivered', async () => {
    const { mapper } = await fleetSession();
    assert.deepEqual(
      mapper.downlink(update('UXYZ779', 'temperature', { c: 2 })).south?.map((s) => s.topic),
      ['foxtrackr/779/V3.0/temp'],
    );
  });

  it('single-device records keep their session (no fleet)', async () => {
    const { mapper } = await fleetSession([
      {
        south: { username: 'fleet-app', password: 'fleet-pw', deviceId: '777' },
        north: { thngId: 'UXYZ777', apiKey: 'KEY' },
      },
    ] as never);
    assert.equal(mapper.constructor.name, 'DialectSession');
    assert.deepEqual(mapper.subscribe(sub('foxtrackr/#')).granted, [{ code: 0x80 }]);
  });
});

describe('check: the record shape', () => {
  const parse = (yaml: string) => parseCredentials('creds.yaml', yaml, { PW: 's3cret' });
  const cases: Array<[string, string, RegExp | undefined]> = [
    [
      'ok',
      // biome-ignore lint/suspicious/noTemplateCurlyInString: the text of a credentials file, ${NAME} is its syntax
      '- south: { username: a, password: "${PW}" }\n  north: { apiKey: K }\n  devices:\n    - { deviceId: "777", thngId: T7 }\n  groups: { g: ["777"] }\n',
      undefined,
    ],
    [
      'no devices',
      '- south: { username: a, password: b }\n  north: { apiKey: K }\n  devices: []\n',
      /devices/,
    ],
    [
      'groups alone',
      '- south: { username: a, password: b }\n  north: { apiKey: K }\n  groups: { g: ["1"] }\n',
      /groups without devices/,
    ],
    [
      'device without id',
      '- south: { username: a, password: b }\n  north: { apiKey: K }\n  devices:\n    - { thngId: T7 }\n',
      /device 1 has no deviceId/,
    ],
    [
      'repeated thngId',
      '- south: { username: a, password: b }\n  north: { apiKey: K }\n  devices:\n    - { deviceId: "1", thngId: T }\n    - { deviceId: "2", thngId: T }\n',
      /device 2: thngId repeats device 1's/,
    ],
    [
      'unsafe id',
      '- south: { username: a, password: b }\n  north: { apiKey: K }\n  devices:\n    - { deviceId: "a/b", thngId: T }\n',
      /device 1: deviceId is empty or holds/,
    ],
    [
      'unknown member',
      '- south: { username: a, password: b }\n  north: { apiKey: K }\n  devices:\n    - { deviceId: "1", thngId: T }\n  groups: { g: ["2"] }\n',
      /group 'g', member 1 is no deviceId/,
    ],
    [
      'group named like a device',
      '- south: { username: a, password: b }\n  north: { apiKey: K }\n  devices:\n    - { deviceId: "1", thngId: T }\n  groups: { "1": ["1"] }\n',
      /group '1' has the deviceId of a device/,
    ],
    [
      'south deviceId too',
      '- south: { username: a, password: b, deviceId: "1" }\n  north: { apiKey: K }\n  devices:\n    - { deviceId: "1", thngId: T }\n',
      /south.deviceId and devices together/,
    ],
    [
      'unset variable in a device',
      // biome-ignore lint/suspicious/noTemplateCurlyInString: the text of a credentials file, ${NAME} is its syntax
      '- south: { username: a, password: b }\n  north: { apiKey: K }\n  devices:\n    - { deviceId: "1", thngId: "${NOPE}" }\n',
      /creds.yaml:4:\d+: environment variable NOPE not set/,
    ],
  ];
  for (const [what, yaml, error] of cases) {
    it(what, () => {
      const p = parse(yaml);
      const errors = [...p.errors, ...fleetErrors(plan, p.records, 'creds.yaml')];
      if (!error) assert.deepEqual(errors, []);
      else
        assert.ok(
          errors.some((e) => error.test(e)),
          errors.join('\n'),
        );
      assert.ok(!errors.join('\n').includes('s3cret'));
    });
  }

  it('a route whose south topics name no device cannot take records with devices', () => {
    const connector = m.routes.get('connector-to-evrythng');
    assert.ok(connector);
    const p = parse(
      '- south: { token: t }\n  north: { apiKey: K }\n  devices:\n    - { deviceId: "1", thngId: T }\n',
    );
    assert.match(
      fleetErrors(connector.plan, p.records, 'c.yaml').join('\n'),
      /record 1: lists devices, but the connector dialect/,
    );
  });

  it('CSV cannot hold devices: the header says so', () => {
    const p = parseCredentials('c.csv', 'south.username,devices\na,b\n', {});
    assert.match(p.errors.join('\n'), /needs YAML or JSON/);
  });

  it('mqtt-dialect-proxy check names the record, the device and the mistake, never a secret', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mdp-fleet-'));
    try {
      await cp(MAPPINGS_DIR, dir, { recursive: true });
      await writeFile(
        join(dir, 'credentials', 'foxtrackr-evrythng.yaml'),
        [
          '- south: { username: fleet-app, password: hunter2-secret }',
          '  north: { apiKey: evt-secret-key }',
          '  devices:',
          '    - { deviceId: "777", thngId: UXYZ777 }',
          '    - { deviceId: "778", thngId: UXYZ777 }',
          '  groups: { my_group: ["777", "779"] }',
          '',
        ].join('\n'),
      );
      let out = '';
      let err = '';
      const code = await check([dir], { out: (t) => (out += t), err: (t) => (err += t) });
      assert.equal(code, 1, out);
      assert.match(err, /foxtrackr-evrythng\.yaml: record 1: device 2: thngId repeats device 1's/);
      assert.match(err, /record 1: group 'my_group', member 2 is no deviceId of the record's devices/);
      assert.ok(!err.includes('hunter2-secret') && !err.includes('evt-secret-key'));
      // Ids from environment variables (not set: check without --env) are not taken for one.
      await writeFile(
        join(dir, 'credentials', 'foxtrackr-evrythng.yaml'),
        [
          '- south: { username: fleet-app, password: hunter2-secret }',
          '  north: { apiKey: evt-secret-key }',
          '  devices:',
          // biome-ignore lint/suspicious/noTemplateCurlyInString: the text of a credentials file, ${NAME} is its syntax
          '    - { deviceId: "${ID_1}", thngId: "${THNG_1}" }',
          // biome-ignore lint/suspicious/noTemplateCurlyInString: the text of a credentials file, ${NAME} is its syntax
          '    - { deviceId: "${ID_2}", thngId: "${THNG_2}" }',
          '',
        ].join('\n'),
      );
      err = '';
      assert.equal(await check([dir], { out: (t) => (out += t), err: (t) => (err += t) }), 0, err);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
