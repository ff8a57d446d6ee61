/**
 * The route-wide last-value cache behind EVRYTHNG `?pubStates=1`, on the shipped dialect
 * (EVRYTHNG onto itself), without sockets: sessions of one identity scope share values, other
 * scopes never see them, even on account-wide topics that carry no id; the cache is bounded.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LastValues } from '../../src/mapping/last-values.js';
import { loadMappings, planFor } from '../../src/mapping/load.js';
import { DialectSession } from '../../src/mapping/session.js';
import type { Vars } from '../../src/mapping/template.js';
import { pub } from '../mapping/session-kit.js';
import { shippedMappings } from '../mapping/shipped.js';

const m = loadMappings(shippedMappings());
const plan = planFor(m, 'evrythng', 'evrythng');

function session(vars: Vars, lastValues: LastValues): DialectSession {
  assert.ok(plan);
  return new DialectSession({
    plan,
    vars: { apiKey: 'NORTH', ...vars },
    southScheme: 'api_key',
    northScheme: vars.thngId ? 'api_key' : 'api_key_app',
    southVersion: 4,
    northVersion: 4,
    nowUs: () => 1_700_000_000_000_000,
    lastValues,
  });
}

const pubStates = (s: DialectSession, topic: string) =>
  s.subscribe({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `${topic}?pubStates=1`, qos: 1 }] })
    .south ?? [];

describe('EVRYTHNG last values (pubStates) keep to their identity scope', () => {
  it('an account-wide action is the last value for that account only', async () => {
    const lv = new LastValues();
    const acme = session({ account: 'acme' }, lv);
    const out = await acme.uplink(pub('/actions/all', '{"type":"scans","id":"A1"}'));
    assert.equal(out.verdict, 'continue');
    const sameAccount = session({ account: 'acme' }, lv);
    assert.deepEqual(
      pubStates(sameAccount, '/actions/all').map((p) => [p.topic, p.payload.toString(), p.retain]),
      [['/actions/all', '{"type":"scans","id":"A1"}', false]],
    );
    const other = session({ account: 'globex' }, lv);
    assert.deepEqual(pubStates(other, '/actions/all'), []);
    const device = session({ thngId: 'T1' }, lv);
    assert.deepEqual(pubStates(device, '/actions/all'), [], 'a device key may not reach account topics');
  });

  it('a Thng’s property is shared by the sessions of that Thng, not by another Thng’s', async () => {
    const lv = new LastValues();
    const a = session({ thngId: 'T1' }, lv);
    await a.uplink(pub('/thngs/T1/properties/temp', '[{"value":3,"timestamp":1700000000000}]'));
    const a2 = session({ thngId: 'T1' }, lv);
    assert.equal(
      pubStates(a2, '/thngs/T1/properties/temp')[0]?.payload.toString(),
      '[{"value":3,"timestamp":1700000000000}]',
    );
    const b = session({ thngId: 'T2' }, lv);
    assert.deepEqual(pubStates(b, '/thngs/T1/properties/temp'), [], 'not allowed: silent');
    assert.deepEqual(pubStates(b, '/thngs/T2/properties/temp'), []);
  });

  it('a will is not the last value: the device is online until the broker publishes it', async () => {
    const lv = new LastValues();
    const a = session({ thngId: 'T1' }, lv);
    await a.uplink(pub('/thngs/T1/properties/status', '[{"value":"online"}]'));
    const w = a.translateWill(pub('/thngs/T1/properties/status', '[{"value":"offline"}]'));
    assert.ok(!(w instanceof Promise));
    assert.equal(w.north?.length, 1);
    const b = session({ thngId: 'T1' }, lv);
    assert.equal(pubStates(b, '/thngs/T1/properties/status')[0]?.payload.toString(), '[{"value":"online"}]');
  });

  it('a dropped uplink (outside the key’s scope) is not remembered', async () => {
    const lv = new LastValues();
    const a = session({ thngId: 'T1' }, lv);
    const out = await a.uplink(pub('/thngs/T2/properties/temp', '[{"value":9}]'));
    assert.equal(out.verdict, 'drop');
    assert.equal(lv.size, 0);
  });

  it('is bounded in entries and in bytes, oldest first', () => {
    const lv = new LastValues({ maxEntries: 3, maxBytes: 10, maxValueBytes: 6 });
    for (let i = 0; i < 5; i++) lv.set('s', `/t/${i}`, Buffer.from('ab'));
    assert.equal(lv.size, 3);
    assert.equal(lv.get('s', '/t/0'), undefined);
    assert.equal(lv.get('s', '/t/4')?.toString(), 'ab');
    lv.set('s', '/big', Buffer.from('0123456789'));
    assert.equal(lv.get('s', '/big'), undefined, 'a value over maxValueBytes is not kept');
    lv.set('s', '/t/5', Buffer.from('abcdef'));
    assert.ok(lv.size <= 3);
    assert.equal(lv.get('s', '/t/5')?.toString(), 'abcdef');
  });

  it('keeps values, not the socket reads they are views into: the bytes held stay within the budget', () => {
    const maxBytes = 1024 * 1024;
    const lv = new LastValues({ maxBytes });
    const a = session({ thngId: 'T1' }, lv);
    for (let i = 0; i < 200; i++) {
      const read = Buffer.alloc(64 * 1024); // one socket read
      const body = Buffer.from(`[{"value":${i}}]`);
      body.copy(read, 100);
      const out = a.uplink(pub(`/thngs/T1/properties/k${i}`, read.subarray(100, 100 + body.length), 0));
      assert.ok(!(out instanceof Promise));
      assert.equal(out.verdict, 'continue');
    }
    const b = session({ thngId: 'T1' }, lv);
    const held = new Set<ArrayBufferLike>();
    for (let i = 0; i < 200; i++) {
      const v = pubStates(b, `/thngs/T1/properties/k${i}`)[0]?.payload;
      assert.equal(v?.toString(), `[{"value":${i}}]`);
      if (v) held.add(v.buffer);
    }
    let bytes = 0;
    for (const ab of held) bytes += ab.byteLength;
    assert.ok(bytes <= maxBytes, `${bytes} bytes held for 200 small values`);
  });
});
