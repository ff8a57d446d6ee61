/**
 * The per-connection state a session's handlers share. `Session` implements it; the handler
 * modules (connect, uplink, downlink, subscriptions, closing) are plain functions over it, so
 * a packet costs a function call and no allocation.
 */
import type { IConnectPacket, IPublishPacket, Packet, QoS } from 'mqtt-packet';
import type { PacketChannel } from '../codec/channel.js';
import type { Outcome, Quirks, SessionMapper } from '../core/contract.js';
import type { Logger } from '../log/logger.js';
import type { NorthPort } from '../upstream/port.js';
import type { SessionContext, SessionLike } from './context.js';
import type { Relay } from './relay.js';

export type State = 'new' | 'connecting' | 'online' | 'closed';

export interface SouthInfo {
  listener: string;
  remoteAddress?: string;
  /** The peer's port (with the address it tells apart devices behind one NAT). */
  remotePort?: number;
  peerCommonName?: string;
  /** Set for a device attached by a south gateway: the gateway's id. */
  gateway?: string;
}

export interface SessionState extends SessionLike {
  state: State;
  readonly info: SouthInfo;
  readonly ctx: SessionContext;
  readonly south: PacketChannel;
  north?: NorthPort;
  /** Highest QoS sent north (a gateway platform refuses QoS 2). */
  northMaxQos: QoS;
  mapper?: SessionMapper;
  quirks: Quirks;
  passThrough: boolean;
  version: 3 | 4 | 5;
  keepaliveMs: number;
  /** MQTT 5 session expiry the client asked for at CONNECT (seconds). */
  sessionExpiry: number;
  southAliases?: Map<number, string>;
  /** The Topic Alias Maximum the client's CONNACK gave it (0: none, aliases forbidden). */
  southAliasMax: number;
  northAliases?: Map<number, string>;
  dialect: string;
  routeName: string;
  /** The session went online (it may be closed since): relays may be made. */
  wentOnline: boolean;
  /**
   * Accepted without credentials, waiting for a key on a topic (key-auth.ts): the CONNECT, how
   * a key is found in a topic, when the wait began, and a packet already refused (answered by
   * the gate mapper rather than tried again).
   */
  awaitingKey?: {
    connect: IConnectPacket;
    keyOf(topic: string): string | undefined;
    since: number;
    refused?: Packet;
    /** Keys refused so far on this connection (closed at KEY_ATTEMPTS). */
    failures?: number;
  };
  /** Holds back later south packets until `work` settles; the packet it gives is handled first. */
  hold(work: Promise<Packet | undefined>): void;
  /** Forgets the relays (made before the session had a north side): the next use makes them anew. */
  dropRelays(): void;
  /** Set while a shutdown drain waits for the in-flight messages. */
  draining?: () => void;
  /** The per-connection logger, made on first use. */
  readonly log: Logger;
  /** The relays as made so far (`up`/`down` make them on first use once online). */
  readonly upRelay?: Relay;
  readonly downRelay?: Relay;
  /** The uplink relay (south → north); undefined before the session went online. */
  readonly up: Relay | undefined;
  /** The downlink relay (north → south); undefined before the session went online. */
  readonly down: Relay | undefined;
  /** A getter, so checks after an await are not narrowed away by the compiler. */
  readonly closed: boolean;
  close(reason: string, err?: Error): void;
  /** Runs an async outcome while holding back later south packets, preserving order. */
  runAsync(outcome: Promise<Outcome>, p: IPublishPacket | null): void;
  /** Replays the south packets held back, then resumes the south stream. */
  flushQueue(): void;
}
