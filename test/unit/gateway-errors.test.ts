/**
 * Error reports on the gateway's errors topic: one whose payload is JSON but not an object
 * (`null`, a number, an array) is unparseable like one that is not JSON; it must not tear
 * down the shared connection. A link to aedes; the reports are published by the broker.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
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
