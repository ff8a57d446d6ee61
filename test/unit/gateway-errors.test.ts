/**
 * Error reports on the gateway's errors topic: one whose payload is JSON but not an object
 * (`null`, a number, an array) is unparseable like one that is not JSON; it must not tear
 * down the shared connection. A link to aedes; the reports are published by the broker.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { captureLogs } from '../dialects/kit.js';
import { type Link, plan, quietEvents, settle, startLink } from './gateway-kit.js';
import { until } from './kit.js';

const ERRORS = '/devices/gw-1/errors';

describe('gateway error reports', () => {
  let link: Link;
  const reported: string[] = [];
  const counted: string[] = [];
  before(async () => {
    link = await startLink([], { onError: (type) => counted.push(type) });
    await link.hub.attach(
      plan('e1', { gatewaySubscriptions: [{ topic: ERRORS, qos: 0 }] }),
      quietEvents('e1', undefined, { onGatewayError: (e) => reported.push(e.type) }),
    );
  });
  after(() => link?.stop());

  const report = (payload: string): Promise<void> =>
    new Promise((resolve) =>
      link.broker.publish(
        { cmd: 'publish', topic: ERRORS, payload: Buffer.from(payload), qos: 0, retain: false, dup: false },
        () => resolve(),
      ),
    );

  it('ignores a report that is JSON but not an object, and keeps the connection', async () => {
    for (const payload of ['null', '42', '[1,2]', '"text"', 'not json']) await report(payload);
    await settle();
    await report('{"error_type":"GATEWAY_DEVICE_NOT_FOUND","device_id":"e1","description":"x"}');
    await until(() => reported.length > 0, 3000, 'the valid report at its device');
    assert.deepEqual(reported, ['GATEWAY_DEVICE_NOT_FOUND']);
    assert.deepEqual(counted, ['GATEWAY_DEVICE_NOT_FOUND']);
    assert.equal(link.pairs.length, 1, 'the gateway connection was never lost');
  });

  it('counts an error type ClearBlade does not document as UNKNOWN (a bounded metric label)', async () => {
    const before = counted.length;
    await report('{"error_type":"MADE_UP_9f8e7d","device_id":"e1"}');
    await until(() => counted.length > before, 3000, 'the report counted');
    assert.deepEqual(counted.slice(before), ['UNKNOWN']);
  });
});

describe('gateway error reports at the rate of a fleet', () => {
  const REPORTS = 130;
  const LIMIT = 100;
  let link: Link;
  const { logger, lines } = captureLogs('info');
  let counted = 0;
  before(async () => {
    link = await startLink([], { log: logger, onError: () => counted++ });
    await link.hub.attach(
      plan('e2', { gatewaySubscriptions: [{ topic: ERRORS, qos: 0 }] }),
      quietEvents('e2'),
    );
  });
  after(() => link?.stop());

  it(`writes ${LIMIT} lines per 10 s (the log budget), then one with the rest; counts every report`, async () => {
    // Every uplink of a device the platform no longer has attached (unbound meanwhile) is one.
    const report = Buffer.from(
      '{"error_type":"GATEWAY_DEVICE_NOT_FOUND","device_id":"gone","description":"x"}',
    );
    for (let i = 0; i < REPORTS; i++)
      link.broker.publish(
        { cmd: 'publish', topic: ERRORS, payload: report, qos: 0, retain: false, dup: false },
        () => undefined,
      );
    await until(() => counted === REPORTS, 5000, 'every report counted');
    const written = lines().filter((l) => l['msg'] === 'gateway error reported by the platform');
    assert.equal(written.length, LIMIT);
    link.hub.close();
    const summary = lines().find(
      (l) =>
        String(l['msg']).startsWith('repeated log lines left out') &&
        l['line'] === 'gateway error reported by the platform',
    );
    assert.equal(summary?.['suppressed'], REPORTS - LIMIT);
  });
});
