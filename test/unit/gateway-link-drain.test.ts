/**
 * The gateway link's flow control: when its one north connection stops taking writes, only
 * the devices that found it blocked are told when it drains, not every attached device.
 * A real broker (aedes) on an in-memory stream whose delivery can be held.
 */
import assert from 'node:assert/strict';
import { Duplex } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { Aedes } from 'aedes';
import type { IPublishPacket } from 'mqtt-packet';
import type { NorthPlan } from '../../src/core/contract.js';
import { silentLogger } from '../../src/log/logger.js';
import { GatewayHub } from '../../src/upstream/gateway.js';
import type { GatewayMember, MemberEvents } from '../../src/upstream/gateway-member.js';
import { type CompiledTransport, parseNorthUrl } from '../../src/upstream/transport.js';
import { until } from '../emulators/aedes-server.js';

/** Two connected streams; while `held`, what the proxy's side writes waits (its callbacks too). */
function gatedPair(): { proxySide: Duplex; brokerSide: Duplex; release(): void; hold(): void } {
  let held = false;
  let waiting: Array<() => void> = [];
  let proxySide: Duplex;
  const brokerSide = new Duplex({
    read() {},
    write(chunk: Buffer, _enc, cb) {
      proxySide.push(chunk);
      cb();
    },
    final(cb) {
      proxySide.push(null);
      cb();
    },
  });
  proxySide = new Duplex({
    read() {},
    write(chunk: Buffer, _enc, cb) {
      const deliver = () => {
        brokerSide.push(chunk);
        cb();
      };
      if (held) waiting.push(deliver);
      else deliver();
    },
    final(cb) {
      brokerSide.push(null);
      cb();
    },
  });
  return {
    proxySide,
    brokerSide,
    hold: () => {
      held = true;
    },
    release: () => {
      held = false;
      const w = waiting;
      waiting = [];
      for (const d of w) d();
    },
  };
}

type GatewayPlan = Extract<NorthPlan, { mode: 'gateway' }>;

function plan(deviceId: string): GatewayPlan {
  const control = (op: string) => ({
    topic: `/devices/${deviceId}/${op}`,
    payload: Buffer.from('{}'),
    qos: 1 as const,
    retain: false,
  });
  return {
    mode: 'gateway',
    key: 'gw-1',
    connect: () => ({
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: 4,
      clientId: 'gw-1',
      clean: true,
      keepalive: 60,
    }),
    deviceId,
    attach: control('attach'),
    detach: control('detach'),
    subscriptions: [],
    gatewaySubscriptions: [],
  };
}

describe('gateway link flow control', () => {
  let broker: Aedes;
  let pair: ReturnType<typeof gatedPair>;
  let hub: GatewayHub;
  const drains = new Map<string, number>();
  const members = new Map<string, GatewayMember>();

  before(async () => {
    broker = await Aedes.createBroker();
    pair = gatedPair();
    broker.handle(pair.brokerSide);
    const transport: CompiledTransport = {
      url: parseNorthUrl('mqtt://127.0.0.1:1883'),
      open: async () => pair.proxySide,
    };
    hub = new GatewayHub({
      transport: () => transport,
      timeoutMs: 5000,
      maxPacketBytes: 1 << 20,
      log: silentLogger,
    });
    for (const id of ['busy', 'idle-1', 'idle-2']) {
      const events: MemberEvents = {
        onPublish: (_p: IPublishPacket) => {},
        onAck: () => {},
        onGatewayError: () => {},
        onDrain: () => drains.set(id, (drains.get(id) ?? 0) + 1),
      };
      members.set(id, await hub.attach(plan(id), events));
    }
  });

  after(async () => {
    hub?.close();
    await new Promise<void>((resolve) => broker?.close(() => resolve()));
  });

  it('tells the device that found the link blocked when it drains, and no other', async () => {
    const busy = members.get('busy') as GatewayMember;
    assert.equal(busy.blocked, false);
    drains.clear();
    pair.hold();
    const payload = Buffer.alloc(1000, 1);
    let sent = 0;
    while (!busy.blocked && sent < 1000) {
      busy.send({
        cmd: 'publish',
        topic: '/devices/busy/events',
        payload,
        qos: 0,
        retain: false,
        dup: false,
      });
      sent++;
    }
    assert.ok(busy.blocked, `the link blocked after ${sent} publishes`);
    assert.ok(sent > 1 && sent < 1000);
    pair.release();
    await until(() => (drains.get('busy') ?? 0) > 0, 5000, 'the busy device told of the drain');
    await new Promise((r) => setImmediate(r));
    assert.equal(drains.get('busy'), 1);
    assert.equal(drains.get('idle-1') ?? 0, 0, 'an idle device is not woken');
    assert.equal(drains.get('idle-2') ?? 0, 0, 'an idle device is not woken');
    assert.equal(busy.blocked, false);
  });
});
