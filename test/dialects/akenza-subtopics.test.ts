/**
 * akenza subtopics both ways, without sockets: uplink levels are joined with "_"
 * (/alerts/critical → alerts_critical); a multi-level name going down to akenza is joined the
 * same way; and a dialect that says `split: "_"` splits an akenza name back into levels.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadMappings, planFor } from '../../src/mapping/load.js';
import { openTranslator } from '../../src/mapping/translator.js';
import { pub } from '../mapping/session-kit.js';
import { shippedMappings } from '../mapping/shipped.js';

const AKENZA = { deviceId: 'dev-1', connectorId: 'conn-1', secret: 'S3CR3T' };
const CLEARBLADE = { project: 'p', region: 'r', registry: 'g', gatewayId: 'gw', privateKey: 'k' };

describe('akenza subtopics', () => {
  const shipped = shippedMappings();

  it('uplink levels are joined with "_" into one event name (a ClearBlade subfolder)', () => {
    const plan = planFor(loadMappings(shipped), 'akenza', 'clearblade');
    assert.ok(plan);
    const s = openTranslator(plan, { ...AKENZA, ...CLEARBLADE });
    const o = s.uplink(pub('/up/S3CR3T/id/dev-1/alerts/critical', '{"code":7}'));
    assert.equal(o.north?.[0]?.topic, '/devices/dev-1/events/alerts_critical');
  });

  it('a multi-level command name going down to akenza is joined the same way', () => {
    const plan = planFor(loadMappings(shipped), 'akenza', 'clearblade');
    assert.ok(plan);
    const s = openTranslator(plan, { ...AKENZA, ...CLEARBLADE });
    s.subscribe({
      cmd: 'subscribe',
      messageId: 1,
      subscriptions: [{ topic: '/down/S3CR3T/id/dev-1/#', qos: 1 }],
    });
    const o = s.downlink(pub('/devices/dev-1/commands/alerts/critical', '{"ack":true}'));
    assert.deepEqual(
      o.south?.map((x) => [x.topic, x.payload.toString()]),
      [['/down/S3CR3T/id/dev-1/alerts_critical', '{"ack":true}']],
    );
  });

  it('a dialect that says split: "_" turns an akenza name back into levels', () => {
    const files = shipped.map((f) =>
      f.path.endsWith('clearblade.yaml')
        ? {
            ...f,
            text: f.text.replace(
              'topic: "/devices/{deviceId}/commands/{name...}"\n',
              'topic: "/devices/{deviceId}/commands/{name...}"\n    split: "_"\n',
            ),
          }
        : f,
    );
    assert.ok(
      files.some((f) => f.text.includes('split: "_"')),
      'the test dialect says split',
    );
    const m = loadMappings(files);
    assert.deepEqual(m.errors, []);
    const plan = planFor(m, 'clearblade', 'akenza');
    assert.ok(plan);
    const s = openTranslator(plan, { ...AKENZA, project: 'p', region: 'r', registry: 'g', deviceJwt: 'j' });
    s.subscribe({
      cmd: 'subscribe',
      messageId: 1,
      subscriptions: [{ topic: '/devices/dev-1/commands/#', qos: 0 }],
    });
    const o = s.downlink(pub('/down/S3CR3T/id/dev-1/alerts_critical', '{"ack":true}'));
    assert.deepEqual(
      o.south?.map((x) => x.topic),
      ['/devices/dev-1/commands/alerts/critical'],
    );
  });

  it('split on an uplink rule, or without a multi-level capture, is a positioned error', () => {
    const files = shipped.map((f) =>
      f.path.endsWith('akenza.yaml')
        ? { ...f, text: f.text.replace('    join: "_"\n    up: event\n', '    split: "_"\n    up: event\n') }
        : f,
    );
    const errors = loadMappings(files).errors;
    assert.ok(
      errors.some((e) => /akenza\.yaml:\d+:\d+: 'split' needs a downlink-only rule/.test(e)),
      errors.join('\n'),
    );
  });
});
