/**
 * `?` in a topic: a query of options only on a dialect that declares options (EVRYTHNG
 * `?pubStates=1`, `?project=`); elsewhere (Connector) a character of the topic: `$resource/temp?x=1`
 * is the property `temp?x=1`, not `temp`. EVRYTHNG subscription filters are
 * percent-decoded as its topics are, so a filter reaches the north topic the uplinks use.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { loadMappings } from '../../src/mapping/load.js';
import type { Vars } from '../../src/mapping/template.js';
import { mappingSession, pub } from './session-kit.js';
import { shippedMappings } from './shipped.js';

const routes = loadMappings(shippedMappings()).routes;
const vars: Vars = { apiKey: 'k', thngId: 'UXYZ', deviceId: '12345', token: 't' };

describe('? options only where the dialect declares them', () => {
  const cases: Array<[route: string, topic: string, reason: string | undefined, north: string | undefined]> =
    [
      ['connector-to-evrythng', '$resource/temp', undefined, '/thngs/UXYZ/properties/temp'],
      // Not property temp: the key is temp?x=1, escaped where `?` would start options north.
      ['connector-to-evrythng', '$resource/temp?x=1', undefined, '/thngs/UXYZ/properties/temp%3Fx%3D1'],
      ['evrythng-to-connector', '/thngs/UXYZ/properties/temp', undefined, '$resource/temp'],
      ['evrythng-to-connector', '/thngs/UXYZ/properties/temp?pubStates=1', undefined, '$resource/temp'],
    ];
  for (const [route, topic, reason, north] of cases)
    test(`${route}: ${topic}`, () => {
      const s = mappingSession(routes.get(route)?.plan, vars);
      const value = route.startsWith('connector') ? '21' : '[{"value":21}]';
      const o = s.uplink(pub(topic, value));
      assert.ok(!(o instanceof Promise));
      assert.equal(o.reason, reason);
      assert.equal(o.north?.[0]?.topic, north);
    });
});

describe('EVRYTHNG subscription filters are percent-decoded', () => {
  test('a property filter with an escaped key subscribes north to the key the uplinks use', () => {
    const s = mappingSession(routes.get('evrythng-to-connector')?.plan, vars);
    const up = s.uplink(pub('/thngs/UXYZ/properties/a%20b', '[{"value":1}]'));
    assert.ok(!(up instanceof Promise));
    assert.equal(up.north?.[0]?.topic, '$resource/a b');
    const plan = s.subscribe({
      cmd: 'subscribe',
      messageId: 1,
      subscriptions: [{ topic: '/thngs/UXYZ/properties/a%20b', qos: 1 }],
    });
    assert.deepEqual(
      plan.north.map((f) => f.topic),
      ['$resource/a b'],
    );
    const down = s.downlink(pub('$resource/a b', '2'));
    assert.ok(!(down instanceof Promise));
    assert.equal(down.south?.[0]?.topic, '/thngs/UXYZ/properties/a%20b');
  });

  test('a malformed escape is not allowed', () => {
    const s = mappingSession(routes.get('evrythng-to-connector')?.plan, vars);
    const plan = s.subscribe({
      cmd: 'subscribe',
      messageId: 1,
      subscriptions: [{ topic: '/thngs/UXYZ/properties/a%zz', qos: 1 }],
    });
    assert.deepEqual(plan.north, []);
  });
});
