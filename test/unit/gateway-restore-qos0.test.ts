/**
 * QoS 0 uplinks a device sends while its gateway link reconnects (a loss, or every JWT
 * renewal): they wait for the link, as QoS 1 ones do, and go once the devices are attached
 * again. They were written to no connection and lost without a trace, a message per active
 * device at each hourly renewal. Real Sessions on a link to aedes.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type Device, gatewayDevice, type Link, startLink } from './gateway-kit.js';
import { until } from './kit.js';

describe('gateway link: QoS 0 uplinks while the link reconnects', () => {
  let link: Link;
  let dev: Device;
  before(async () => {
    link = await startLink([]);
    dev = gatewayDevice(link.hub, 'z');
    await dev.connect();
  });
  after(() => {
    dev?.vanish();
    return link?.stop();
  });

  it('are sent once the device is attached again', async () => {
    link.pair.brokerSide.destroy();
    await until(() => dev.session.north?.blocked === true, 3000, 'the link reconnecting');
    for (const n of ['1', '2', '3'])
      dev.send({ cmd: 'publish', topic: 't', payload: Buffer.from(n), qos: 0, retain: false, dup: false });
    const events = () =>
      (link.pairs[1]?.sent ?? [])
        .filter((p) => p.cmd === 'publish' && p.topic === '/devices/z/events')
        .map((p) => (p as { payload: Buffer }).payload.toString());
    await until(() => events().length === 3, 8000, 'the three uplinks on the new connection').catch(
      (err: Error) => {
        throw new Error(`${err.message} (sent: ${events().join(',')})`);
      },
    );
    assert.deepEqual(events(), ['1', '2', '3']);
    const sent = link.pairs[1]?.sent
      .filter((p) => p.cmd === 'publish')
      .map((p) => (p as { topic: string }).topic);
    assert.ok(
      sent && sent.indexOf('/devices/z/attach') < sent.indexOf('/devices/z/events'),
      'after the attach',
    );
  });
});
