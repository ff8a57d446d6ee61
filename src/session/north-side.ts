/**
 * A session's north events and its relays' peers: one object of methods per session, no
 * closures. North acknowledgements go to the uplink relay, PUBREL to the downlink relay,
 * PUBLISH to the downlink path.
 */
import type { IDisconnectPacket, IPublishPacket, Packet } from 'mqtt-packet';
import type { PacketChannel } from '../codec/channel.js';
import { topicShape } from '../log/topic-shape.js';
import { northDisconnect, northGatewayError, northPublish, northRawPublish } from './downlink.js';
import type { NorthEvents } from './north-open.js';
import type { RelayPeer } from './relay.js';
import type { SessionState } from './state.js';

/**
 * The SUBACK of the automatic north subscriptions: a refused one leaves the device without
 * the downlinks it expects, so it is logged, by route and filter shape (the connection
 * stays: its uplinks still work).
 */
export function autoSubscribed(s: SessionState, granted: readonly number[]): void {
  let refused = false;
  for (const code of granted) if (code >= 0x80) refused = true;
  if (!refused) return;
  const auto = s.mapper?.autoSubscribe() ?? [];
  // Filters may carry secrets (akenza's /down/{secret}/...): only their shapes are logged.
  s.log.warn(
    {
      route: s.routeName,
      refused: auto.filter((_, i) => (granted[i] ?? 0x80) >= 0x80).map((x) => topicShape(x.topic)),
    },
    'north broker refused an automatic subscription: no downlinks on it',
  );
}

export class NorthSide implements NorthEvents {
  constructor(private readonly s: SessionState) {}
  onPublish(packet: IPublishPacket): void {
    northPublish(this.s, packet);
  }
  onAck(packet: Packet & { cmd: 'puback' | 'pubrec' | 'pubcomp' }): void {
    if (this.s.up?.onDestinationAck(packet) === 'unexpected') this.s.close('north_unexpected_ack');
  }
  onPubrel(messageId: number): void {
    this.s.down?.onSourcePubrel(messageId);
  }
  onDisconnect(packet: IDisconnectPacket): void {
    northDisconnect(this.s, packet);
  }
  onClose(reason: string): void {
    this.s.close(`north_${reason}`);
  }
  onDrain(): void {
    this.s.flushQueue();
  }
  onGatewayError(error: { type: string; description?: string }): void {
    northGatewayError(this.s, error);
  }
  onRawPublish(frame: Buffer, qos: number, messageId: number, ts: number, te: number, ps: number): boolean {
    return northRawPublish(this.s, frame, qos, messageId, ts, te, ps);
  }
  onAutoSubscribed(granted: number[]): void {
    autoSubscribed(this.s, granted);
  }
  /** A gateway device: a newer session of the same device took its place on the link. */
  onEvicted(): void {
    this.s.close('session_taken_over');
  }
}

/** A relay peer that writes to a packet channel. */
export class ChannelPeer implements RelayPeer {
  constructor(private readonly channel: PacketChannel) {}
  send(packet: Packet): boolean {
    return this.channel.write(packet);
  }
}

/** The peer of a session without a north side: nothing goes anywhere. */
export const NOWHERE: RelayPeer = { send: () => false };
