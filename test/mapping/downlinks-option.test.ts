/**
 * The route option `downlinks: false`: validated by the route schema, loaded into the route
 * spec, and what it changes in a session (no automatic north subscription, SUBSCRIBE refused
 * where the south dialect has explicit subscriptions, nothing north-bound remembered as an
 * echo, north publishes dropped).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadMappings, type MappingFile } from '../../src/mapping/load.js';
import type { Plan } from '../../src/mapping/plan.js';
import type { DialectSession } from '../../src/mapping/session.js';
import type { Vars } from '../../src/mapping/template.js';
import { mappingSession } from './session-kit.js';
import { shippedMappings } from './shipped.js';

const base = shippedMappings().filter((f) => f.folder !== 'routes');
const route = (text: string): MappingFile => ({ path: 'mappings/routes/u.yaml', folder: 'routes', text });
const load = (text: string) => loadMappings([...base, route(text)]);

test('downlinks must be a boolean', () => {
  assert.deepEqual(load('route: u\nsouth: connector\nnorth: evrythng\ndownlinks: "no"\n').errors, [
    "mappings/routes/u.yaml:4:12: 'downlinks' must be boolean",
  ]);
});

test('downlinks: false with offline_sync: true is refused (nothing to keep offline)', () => {
  const e = load(
    'route: u\nsouth: connector\nnorth: evrythng\ndownlinks: false\noffline_sync: true\n',
  ).errors;
  assert.equal(e.length, 1);
  assert.match(e[0] ?? '', /^mappings\/routes\/u\.yaml:4:\d+: a route without downlinks/);
});

test('the option reaches the route spec; absent or true means downlinks as before', () => {
  assert.equal(
    load('route: u\nsouth: connector\nnorth: evrythng\ndownlinks: false\n').routes.get('u')?.uplinkOnly,
    true,
  );
  assert.equal(
    load('route: u\nsouth: connector\nnorth: evrythng\ndownlinks: true\n').routes.get('u')?.uplinkOnly,
    undefined,
  );
  assert.equal(load('route: u\nsouth: connector\nnorth: evrythng\n').routes.get('u')?.uplinkOnly, undefined);
  const shipped = loadMappings(shippedMappings());
  assert.deepEqual(shipped.errors, []);
  assert.equal(shipped.routes.get('connector-to-evrythng-uplink')?.uplinkOnly, true);
  assert.equal(shipped.routes.get('connector-to-evrythng')?.uplinkOnly, undefined);
});

const session = (plan: Plan, vars: Vars, downlinks?: boolean): DialectSession =>
  mappingSession(plan, vars, { persistent: true, ...(downlinks === undefined ? {} : { downlinks }) });

const connectorVars: Vars = { deviceId: 'd1', token: 't1', thngId: 'T1', apiKey: 'k1' };

test('Connector → EVRYTHNG without downlinks: no automatic subscription, no echo, north publishes dropped', () => {
  const m = loadMappings(shippedMappings());
  const plan = m.routes.get('connector-to-evrythng-uplink')?.plan;
  assert.ok(plan);
  const full = session(plan, connectorVars);
  assert.ok(full.autoSubscribe().length > 0, 'the same plan with downlinks subscribes automatically');
  const s = session(plan, connectorVars, false);
  assert.deepEqual(s.autoSubscribe(), []);
  const up = s.uplink({
    cmd: 'publish',
    topic: '$resource/temp',
    payload: Buffer.from('23'),
    qos: 1,
    retain: false,
    dup: false,
  });
  assert.equal(up.verdict, 'continue');
  const out = up.north?.[0];
  assert.ok(out);
  assert.equal(out.topic, '/thngs/T1/properties/temp');
  // The north broker's copy of that very uplink: on a route with downlinks it is an echo.
  const back = {
    cmd: 'publish' as const,
    topic: out.topic,
    payload: out.payload,
    qos: 1 as const,
    retain: false,
    dup: false,
  };
  full.uplink({
    cmd: 'publish',
    topic: '$resource/temp',
    payload: Buffer.from('23'),
    qos: 1,
    retain: false,
    dup: false,
  });
  assert.equal(full.downlink({ ...back }).reason, 'echo');
  assert.deepEqual(s.downlink({ ...back }), { verdict: 'drop', reason: 'no_downlinks' });
  const update = { ...back, payload: Buffer.from('[{"value":19.5}]') };
  assert.equal(full.downlink({ ...update }).verdict, 'continue');
  assert.equal(s.downlink({ ...update }).reason, 'no_downlinks');
  // Connector answers SUBSCRIBE itself (automatic subscriptions): the same answer, nothing north.
  const sub = s.subscribe({
    cmd: 'subscribe',
    messageId: 1,
    subscriptions: [{ topic: '$resource/#', qos: 0 }],
  });
  assert.deepEqual(
    sub,
    full.subscribe({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '$resource/#', qos: 0 }] }),
  );
  assert.deepEqual(sub.north, []);
});

test('EVRYTHNG → Connector without downlinks: a SUBSCRIBE is refused and nothing is subscribed north', () => {
  const m = load('route: u\nsouth: evrythng\nnorth: connector\ndownlinks: false\n');
  const plan = m.routes.get('u')?.plan;
  assert.ok(plan);
  const vars: Vars = { thngId: 'T1', apiKey: 'k1', deviceId: 'd1', token: 't1' };
  const packet = {
    cmd: 'subscribe' as const,
    messageId: 1,
    subscriptions: [
      { topic: '/thngs/T1/properties/temp', qos: 1 as const },
      { topic: '/thngs/T1/properties', qos: 0 as const },
    ],
  };
  const withDownlinks = session(plan, vars).subscribe(packet);
  assert.ok(withDownlinks.north.length > 0, 'the same plan with downlinks subscribes north');
  assert.deepEqual(session(plan, vars, false).subscribe(packet), {
    north: [],
    granted: [{ code: 0x80 }, { code: 0x80 }],
  });
});
