/**
 * What a session needs from its north side, whether it owns the connection (NorthClient,
 * one per device) or shares one with other devices of the same gateway (GatewayMember).
 */
import type {
  IDisconnectPacket,
  ISubscribePacket,
  ISubscription,
  IUnsubscribePacket,
  Packet,
} from 'mqtt-packet';
import type { IdSpace } from '../codec/packet-ids.js';

export interface NorthPort {
  readonly ids: IdSpace;
  /**
   * A connection shared with other devices (a gateway link): pause() cannot stop it for this
   * device, so a device that does not read loses its QoS 0 downlinks instead (downlink.ts).
   */
  readonly shared?: boolean;
  /** The north side is not keeping up: stop reading from the south. */
  readonly blocked: boolean;
  send(packet: Packet): boolean;
  /** The session is online: deliver what arrived meanwhile. */
  start(): void;
  subscribe(subscriptions: ISubscription[], properties?: ISubscribePacket['properties']): Promise<number[]>;
  unsubscribe(topics: string[], properties?: IUnsubscribePacket['properties']): Promise<number[]>;
  pause(): void;
  resume(): void;
  /** Keepalive; false when the north side went silent. */
  tick(now: number): boolean;
  /** Normal end (the client said DISCONNECT). */
  end(disconnect?: IDisconnectPacket): void;
  /** Abrupt end (the client vanished: a will, if any, is published). */
  destroy(): void;
}
