/**
 * Fake peers for the Relay tests: each records every packet the relay sends it.
 */
import type { Packet, QoS } from 'mqtt-packet';
import { IdAllocator } from '../../src/codec/packet-ids.js';
import type { PublishOut } from '../../src/core/contract.js';
import { Relay } from '../../src/session/relay.js';

export interface Peer {
  sent: Packet[];
  send(p: Packet): boolean;
  /** Takes and returns what was sent since the last take. */
  take(): Packet[];
}

export function peer(): Peer {
  const p: Peer = {
    sent: [],
    send(packet) {
      p.sent.push(packet);
      return true;
    },
    take() {
      const out = p.sent;
      p.sent = [];
      return out;
    },
  };
  return p;
}

/** A relay between fake peers; `destinationQos2` false: the destination takes no QoS 2. */
export function setup(destinationQos2 = true) {
  const src = peer();
  const dst = peer();
  const ids = new IdAllocator();
  const hooks = { started: 0, settled: [] as number[] };
  const relay = new Relay(
    src,
    dst,
    ids,
    {
      onStart: () => hooks.started++,
      onSettled: (t0) => hooks.settled.push(t0),
    },
    destinationQos2,
  );
  return { src, dst, ids, hooks, relay };
}

export function out(topic: string, qos: QoS, extra: Partial<PublishOut> = {}): PublishOut {
  return { topic, payload: Buffer.from(topic), qos, retain: false, ...extra };
}

/** Destination message ids of the PUBLISH packets among `packets`. */
export function publishIds(packets: Packet[]): number[] {
  return packets.filter((p) => p.cmd === 'publish').map((p) => p.messageId ?? 0);
}
