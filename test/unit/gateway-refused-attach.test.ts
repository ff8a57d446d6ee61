/**
 * An attach the platform refuses gets no PUBACK, only an error report naming its packet id
 * (specs/clearblade-iot-core-gateway.txt). The id must be free again once that report came:
 * kept until the connection goes, a device retrying its refused attach took one id of the
 * shared connection per attempt, and the link stopped every device once they filled its window.
 * A link to aedes that handles a refused attach as the ClearBlade emulator does.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Aedes } from 'aedes';
import type { GatewayMember } from '../../src/upstream/gateway-member.js';
import { type Link, plan, quietEvents, startLink } from './gateway-kit.js';
import { until } from './kit.js';

const ERRORS = '/devices/gw-1/errors';
const LINK_LIMIT = 3;

describe('gateway link: attaches the platform refuses', () => {
  let link: Link;
  let broker: Aedes | undefined;
  let good: GatewayMember;
  before(async () => {
    link = await startLink([], {
      timeoutMs: 300,
      limits: { device: 100, link: LINK_LIMIT },
      authorizePublish: (_client, packet, cb) => {
        if (packet.topic !== '/devices/bad/attach') return cb(null);
        const report = {
          error_type: 'GATEWAY_ATTACHMENT_ERROR',
          device_id: 'bad',
          description: 'device is not bound to the gateway',
          message_type: 'PUBLISH',
          topic: packet.topic,
          packet_id: packet.messageId ?? 0,
        };
        broker?.publish(
          {
            cmd: 'publish',
            topic: ERRORS,
            payload: Buffer.from(JSON.stringify(report)),
            qos: 0,
            retain: false,
            dup: false,
          },
          () => undefined,
        );
        // Not acknowledged: handled as QoS 0 on a topic nobody has.
        (packet as { qos: number }).qos = 0;
        packet.topic = '$refused';
        cb(null);
      },
    });
    broker = link.broker;
    good = await link.hub.attach(
      plan('good', { gatewaySubscriptions: [{ topic: ERRORS, qos: 0 }] }),
      quietEvents('good'),
    );
  });
  after(() => link?.stop());

  it("frees each refused attach's packet id: the other devices keep the link's window", async () => {
    for (let i = 0; i < LINK_LIMIT + 2; i++)
      await assert.rejects(link.hub.attach(plan('bad'), quietEvents('bad')), /refused|PUBACK/);
    await until(() => !good.blocked, 3000, 'the good device may send');
    assert.equal(link.pairs.length, 1, 'on the one connection');
  });
});
