/**
 * Only uplinks a north subscription covers are remembered as echoes: the broker sends nothing
 * else back, and remembering it anyway filled the echo set of every device that publishes on
 * two-way topics without subscribing (up to the set's bound, some 8 MB a device), and made a
 * platform message equal to such an uplink look like its echo. Persistent north sessions keep
 * the filters of earlier connections, and remember everything while the broker may hold
 * subscriptions the proxy never saw.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { EchoScope } from '../../src/mapping/echo-scope.js';
import { loadMappings } from '../../src/mapping/load.js';
import type { DialectSession } from '../../src/mapping/session.js';
import type { Vars } from '../../src/mapping/template.js';
import { mappingSession, pub } from './session-kit.js';
import { shippedMappings } from './shipped.js';

const plan = loadMappings(shippedMappings()).routes.get('akenza-to-evrythng')?.plan;
const vars: Vars = { deviceId: 'dev-1', connectorId: 'c1', secret: 's1', thngId: 'T1', apiKey: 'k1' };

const session = (echo: EchoScope, persistent: boolean): DialectSession =>
  mappingSession(plan, vars, { persistent, echo });
const action = (n: number) => pub('/up/s1/id/dev-1/scan', `{"n":${n}}`);
const DOWN = '/down/s1/id/dev-1/#';
const subscribeDown = (s: DialectSession) =>
  s.subscribe({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: DOWN, qos: 1 }] });

describe('echo scope of a session', () => {
  test('nothing subscribed: a thousand two-way uplinks leave the echo set empty', () => {
    const scope = new EchoScope(false);
    const s = session(scope, false);
    for (let i = 0; i < 1000; i++) {
      const o = s.uplink(action(i));
      assert.ok(!(o instanceof Promise));
      assert.equal(o.verdict, 'continue');
      assert.equal(o.north?.[0]?.topic, '/thngs/T1/actions/scan');
    }
    assert.equal(scope.set.entries, 0);
  });

  test('subscribed: uplinks on covered topics are remembered, and forgotten again after unsubscribing', () => {
    const scope = new EchoScope(false);
    const s = session(scope, false);
    const plan = subscribeDown(s);
    assert.ok(plan.north.some((f) => f.topic.startsWith('/thngs/T1/actions/')));
    s.uplink(action(1));
    assert.equal(scope.set.entries, 1);
    assert.equal(s.downlink(pub('/thngs/T1/actions/scan', '{"n":1}')).reason, 'echo');
    assert.equal(scope.set.entries, 0);
    s.unsubscribe({ cmd: 'unsubscribe', messageId: 2, unsubscriptions: [DOWN] });
    s.uplink(action(2));
    assert.equal(scope.set.entries, 0, 'no subscription left: the broker sends nothing back');
  });

  test('an unknown persistent session remembers everything until the broker says it kept none', () => {
    const scope = new EchoScope(true);
    const s = session(scope, true);
    s.uplink(action(1));
    assert.equal(scope.set.entries, 1, 'the broker may hold a subscription from before this process');
    s.onNorthConnack(true);
    s.uplink(action(2));
    assert.equal(scope.set.entries, 2, 'a session present: still unknown');
    s.onNorthConnack(false);
    assert.equal(scope.set.entries, 0, 'no session: nothing queued that could come back');
    s.uplink(action(3));
    assert.equal(scope.set.entries, 0);
  });

  test("a persistent session keeps the filters of the client id's earlier connections", () => {
    const scope = new EchoScope(true);
    const first = session(scope, true);
    first.onNorthConnack(false);
    subscribeDown(first);
    first.close();
    // The device comes back without subscribing again: the broker still holds its filters.
    const second = session(scope, true);
    second.onNorthConnack(true);
    second.uplink(action(4));
    assert.equal(scope.set.entries, 1);
    assert.equal(second.downlink(pub('/thngs/T1/actions/scan', '{"n":4}')).reason, 'echo');
    // The broker lost the session: the old filters are gone with it.
    const third = session(scope, true);
    third.onNorthConnack(false);
    third.uplink(action(5));
    assert.equal(scope.set.entries, 0);
  });
});
