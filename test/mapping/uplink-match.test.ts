/**
 * A session keeps the rule each uplink topic matched (a device publishes to a few topics over
 * and over), up to a bound per session. Kept matches must answer as a fresh match would: the
 * captures of their own topic, a foreign identity refused every time, and the same answers
 * after the table has been started again.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { loadMappings } from '../../src/mapping/load.js';
import type { Vars } from '../../src/mapping/template.js';
import { mappingSession, pub } from './session-kit.js';
import { shippedMappings } from './shipped.js';

const plan = loadMappings(shippedMappings()).routes.get('akenza-to-evrythng')?.plan;
const vars: Vars = { deviceId: 'dev-1', connectorId: 'c1', secret: 's1', thngId: 'T1', apiKey: 'k1' };

describe('uplink topic matches kept by a session', () => {
  test('each of 100 topics, sent three times over, maps to its own north topic', () => {
    const s = mappingSession(plan, vars);
    for (let round = 0; round < 3; round++)
      for (let i = 0; i < 100; i++) {
        const o = s.uplink(pub(`/up/s1/id/dev-1/act${i}`, `{"n":${round}}`));
        assert.ok(!(o instanceof Promise));
        assert.equal(o.verdict, 'continue');
        assert.equal(o.north?.[0]?.topic, `/thngs/T1/actions/act${i}`);
      }
  });

  test('a topic naming another device is refused every time, between accepted ones', () => {
    const s = mappingSession(plan, vars);
    for (let i = 0; i < 3; i++) {
      const foreign = s.uplink(pub('/up/s1/id/dev-2/scan', '{"n":1}'));
      assert.ok(!(foreign instanceof Promise));
      assert.equal(foreign.verdict, 'drop');
      assert.equal(foreign.reason, 'foreign_identity');
      const own = s.uplink(pub('/up/s1/id/dev-1/scan', '{"n":1}'));
      assert.ok(!(own instanceof Promise));
      assert.equal(own.north?.[0]?.topic, '/thngs/T1/actions/scan');
    }
  });

  test('two sessions with the same topics keep their own identities', () => {
    const a = mappingSession(plan, vars);
    const b = mappingSession(plan, { ...vars, deviceId: 'dev-2', thngId: 'T2' });
    for (let i = 0; i < 2; i++) {
      const oa = a.uplink(pub('/up/s1/id/dev-1/scan', '{}'));
      const ob = b.uplink(pub('/up/s1/id/dev-1/scan', '{}'));
      assert.ok(!(oa instanceof Promise) && !(ob instanceof Promise));
      assert.equal(oa.north?.[0]?.topic, '/thngs/T1/actions/scan');
      assert.equal(ob.reason, 'foreign_identity');
    }
  });
});
