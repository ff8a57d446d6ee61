/**
 * The pass-through route: every packet is forwarded unchanged in both directions. The
 * core uses it as its fast path (`passThrough: true`: v5 properties and topic aliases
 * untouched) and as the baseline the mapping benchmark compares against.
 */
import type { IConnectPacket, IPublishPacket, ISubscribePacket, IUnsubscribePacket, QoS } from 'mqtt-packet';
import {
  type ConnectDecision,
  type Outcome,
  PASS_QUIRKS,
  type RouteHandler,
  type SessionMapper,
  type SouthHello,
  type SubscribePlan,
  type UnsubscribePlan,
} from '../core/contract.js';

function forward(packet: IPublishPacket): Outcome {
  const out: Outcome['north'] = [
    {
      topic: packet.topic,
      payload: typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload,
      qos: packet.qos,
      retain: packet.retain,
      ...(packet.properties ? { properties: packet.properties } : {}),
    },
  ];
  return { north: out, verdict: 'continue', rule: 'passthrough' };
}

function forwardDown(packet: IPublishPacket): Outcome {
  const o = forward(packet);
  return { south: o.north ?? [], verdict: 'continue', rule: 'passthrough' };
}

/** The mapper for one pass-through session: stateless, so one instance serves all. */
export const passThroughMapper: SessionMapper = Object.freeze({
  uplink: forward,
  downlink: forwardDown,
  subscribe(packet: ISubscribePacket): SubscribePlan {
    const north = packet.subscriptions.map((s) => ({
      topic: s.topic,
      qos: s.qos as QoS,
      ...(s.nl !== undefined ? { nl: s.nl } : {}),
      ...(s.rap !== undefined ? { rap: s.rap } : {}),
      ...(s.rh !== undefined ? { rh: s.rh } : {}),
    }));
    return {
      north,
      granted: north.map((_, i) => ({ from: [i] })),
      ...(packet.properties ? { properties: packet.properties } : {}),
    };
  },
  unsubscribe(packet: IUnsubscribePacket): UnsubscribePlan {
    return { north: [...packet.unsubscriptions] };
  },
  autoSubscribe(): Array<{ topic: string; qos: QoS }> {
    return [];
  },
  close(): void {},
});

/** A route handler that rewrites nothing. */
export function passThroughRoute(name = 'passthrough'): RouteHandler {
  return {
    name,
    passThrough: true,
    async openSession(hello: SouthHello): Promise<ConnectDecision> {
      const connect: IConnectPacket = hello.connect;
      return {
        accept: true,
        north: { mode: 'direct', connect },
        mapper: passThroughMapper,
        quirks: PASS_QUIRKS,
        dialect: 'passthrough',
      };
    },
  };
}
