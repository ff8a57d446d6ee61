/**
 * The seam between the transport core (listeners, sessions, north connections) and the
 * mapping engine. The core knows MQTT packets and byte streams; a RouteHandler knows
 * dialects. Everything a RouteHandler does is pure except `openSession`, which may consult
 * an identity source (a credentials file, a provisioning store) and is therefore async.
 *
 * Built once per route from configuration; `openSession` is called once per south CONNECT
 * and returns a SessionMapper that lives as long as that connection.
 */
import type { IConnectPacket, IPublishPacket, ISubscribePacket, IUnsubscribePacket, QoS } from 'mqtt-packet';

/** What the core tells a route about a new south client. */
export interface SouthHello {
  /** The CONNECT packet as parsed (protocolVersion 3, 4 or 5). */
  readonly connect: IConnectPacket;
  /** Listener name: 'tcp' | 'tls' | 'ws' | 'wss' | 'native-ws' | 'native-wss' (one socket per topic URL). */
  readonly listener: string;
  /** Common name of a verified TLS client certificate, when there is one. */
  readonly peerCommonName?: string;
  readonly remoteAddress?: string;
  /**
   * Set on the session of a device attached by a south gateway: the id of the gateway, which
   * has authenticated itself. A route may accept the device on that authority.
   */
  readonly gateway?: string;
  /**
   * A key the client gave on a topic after a CONNECT without credentials (see `awaitsKey`):
   * recognised and looked up as the CONNECT's password would have been.
   */
  readonly topicKey?: string;
}

/**
 * A south dialect whose clients may be gateways carrying many devices on one connection
 * (ClearBlade). The proxy demultiplexes such a connection: each attached device gets a
 * session of its own, as if it had connected itself.
 */
export interface SouthGatewaySpec {
  /** The gateway id in a CONNECT client id; undefined when the client id names none. */
  gatewayId(clientId: string): string | undefined;
  /** The device a topic addresses, and whether it is the attach or detach control topic. */
  classify(topic: string): { deviceId: string; control?: 'attach' | 'detach' } | undefined;
  /** The client id an attached device's own session connects with. */
  deviceClientId(gatewayClientId: string, deviceId: string): string;
  /** Where errors for the gateway's devices are published. */
  errorsTopic(gatewayId: string): string;
}

/** One publish to emit on one side. `properties` are MQTT 5 properties (dropped toward a 3.1.1 peer). */
export interface PublishOut {
  topic: string;
  payload: Buffer;
  qos: QoS;
  retain: boolean;
  dup?: boolean;
  properties?: IPublishPacket['properties'];
}

/**
 * The result of mapping one PUBLISH. `north` and `south` are emitted in order. A verdict of
 * 'drop' discards the message (it is still acknowledged to its sender when QoS > 0);
 * 'disconnect' closes the south connection without acknowledging. `reason` is a short,
 * bounded code (metrics label, log field): never a topic, id or secret.
 */
export interface Outcome {
  north?: PublishOut[];
  south?: PublishOut[];
  verdict?: 'continue' | 'drop' | 'disconnect';
  reason?: string;
  /** Name of the rule that matched (bounded: it comes from a mapping file). */
  rule?: string;
}

/** How one south SUBSCRIBE becomes north subscriptions, and how the SUBACK is mapped back. */
export interface SubscribePlan {
  /** North filters to subscribe (may be empty). */
  north: Array<{ topic: string; qos: QoS; nl?: boolean; rap?: boolean; rh?: number }>;
  /**
   * For each south filter, in order: either a fixed granted code (QoS 0-2 or 0x80 failure),
   * or the indexes into `north` whose SUBACK codes decide it (the lowest granted QoS wins;
   * any failure fails the filter, or with `any` only all of them failing does: a filter over
   * many devices, one of which the platform refuses, as a broker granting `#` filters by its
   * ACL per message), at most `max` when given (the QoS the client asked for).
   */
  granted: Array<{ code: number } | { from: number[]; max?: number; any?: boolean }>;
  /** Subscription identifier/user properties to keep (v5). */
  properties?: ISubscribePacket['properties'];
  /** Set to disconnect the client instead of answering. */
  disconnect?: string;
  /** Publishes for the client right after its SUBACK (e.g. last known values, `?pubStates=1`). */
  south?: PublishOut[];
}

export interface UnsubscribePlan {
  north: string[];
  /** Answer UNSUBACK without touching north (e.g. Connector). */
  ackOnly?: boolean;
}

/** Protocol quirks the session enforces generically; declared by a dialect, compiled by the engine. */
export interface Quirks {
  /** CONNACK session present: taken from north, or forced. */
  sessionPresent: 'north' | 'always' | 'never';
  /** Clean session/start from the client: passed, or forced to false. */
  cleanSession: 'pass' | 'force_false';
  /** Will message: passed north, or silently dropped. */
  will: 'pass' | 'ignore';
  /** PUBLISH retain flag from the client: passed or cleared. */
  retain: 'pass' | 'ignore';
  /** QoS 2 from the client: passed, or downgraded. */
  qos2: 'pass' | 'as_qos0' | 'as_qos1';
  /** Highest QoS the proxy uses toward the client. */
  maxDownlinkQos: QoS;
  /** DUP=1 with QoS 0 closes the connection. */
  dupWithQos0Disconnect: boolean;
  /** PUBACK/PUBREC/PUBREL/PUBCOMP sent by the client close the connection. */
  clientAcksDisconnect: boolean;
  /** Largest accepted PUBLISH payload from the client, in bytes (0: no limit beyond the packet limit). */
  maxPayloadBytes: number;
  /** Keepalive sent north is clamped to this many seconds (0: unchanged). */
  northKeepaliveMax: number;
}

export const PASS_QUIRKS: Quirks = Object.freeze({
  sessionPresent: 'north',
  cleanSession: 'pass',
  will: 'pass',
  retain: 'pass',
  qos2: 'pass',
  maxDownlinkQos: 2,
  dupWithQos0Disconnect: false,
  clientAcksDisconnect: false,
  maxPayloadBytes: 0,
  northKeepaliveMax: 0,
});

/**
 * Where the session's north traffic goes.
 * - direct: one north connection of its own, opened with `connect`.
 * - gateway: a north connection shared by every device of one gateway identity (`key`),
 *   opened with `connect`; the device is attached with `attach` before its traffic flows.
 * - local: no north connection at all (e.g. an anonymous client that may only provision).
 */
export type NorthPlan =
  | { mode: 'direct'; connect: IConnectPacket; url?: string }
  | {
      mode: 'gateway';
      key: string;
      connect: () => IConnectPacket;
      url?: string;
      deviceId: string;
      attach: PublishOut;
      /**
       * The attach for a re-attach after a reconnect, when the proxy signs the device's JWT
       * (its key is in the record): signed again if the first is near its expiry.
       */
      freshAttach?: () => Promise<PublishOut>;
      detach: PublishOut;
      /** Filters this device needs on the shared connection (config, commands). */
      subscriptions: Array<{ topic: string; qos: QoS }>;
      /** Gateway-wide subscriptions (the errors topic). */
      gatewaySubscriptions: Array<{ topic: string; qos: QoS }>;
      /** Reconnect with a fresh `connect()` (e.g. a new JWT) after this many ms; 0: never. */
      renewAfterMs?: number;
    }
  | { mode: 'local' };

export type ConnectDecision =
  | {
      accept: false;
      /** MQTT 3.1.1 CONNACK return code (2 id rejected, 4 bad username or password, 5 not authorized). */
      returnCode: number;
      /** MQTT 5 reason code (0x85, 0x86, 0x87, ...). */
      reasonCode: number;
      /** Bounded code for logs and metrics. */
      reason: string;
    }
  | {
      accept: true;
      north: NorthPlan;
      mapper: SessionMapper;
      quirks: Quirks;
      /** Bounded label for metrics: the south dialect name. */
      dialect: string;
      /**
       * Set when a south gateway route accepted a gateway's own CONNECT (not a device
       * connecting directly). `ownNorth`: its record has north credentials, so the gateway's
       * own topics get a session of their own.
       */
      southGateway?: { ownNorth: boolean };
      /**
       * Accepted without credentials, the key to come on a topic (a dialect declaring the
       * `access_token` option: EVRYTHNG over WebSocket). `north` is local and `mapper` refuses
       * everything; the core finds a key with `keyOf` in a SUBSCRIBE filter or PUBLISH topic
       * and opens the session again with it (`SouthHello.topicKey`).
       */
      awaitsKey?: { keyOf(topic: string): string | undefined };
    };

/** Per-connection translation; every method is synchronous except `uplink` may return a promise. */
export interface SessionMapper {
  /** A south PUBLISH (topic alias already resolved). */
  uplink(packet: IPublishPacket): Outcome | Promise<Outcome>;
  /** A north PUBLISH (topic alias already resolved). */
  downlink(packet: IPublishPacket): Outcome;
  subscribe(packet: ISubscribePacket): SubscribePlan;
  unsubscribe(packet: IUnsubscribePacket): UnsubscribePlan;
  /** North subscriptions to make as soon as the north CONNACK arrives (auto-subscription). */
  autoSubscribe(): Array<{ topic: string; qos: QoS }>;
  /** South publishes to emit once the session is up (e.g. offline sync, pubStates). */
  onOnline?(): PublishOut[] | Promise<PublishOut[]>;
  /** The north CONNACK arrived: whether the broker kept a session for this client id. */
  onNorthConnack?(sessionPresent: boolean): void;
  /** An error addressed to this device by a gateway platform; returns what to do with the device. */
  onGatewayError?(error: { type: string; description?: string }): Outcome;
  /**
   * The north broker's copy of one of this session's own uplinks (a north session subscribed
   * to the device's own topics gets back what it published), recognised on the PUBLISH frame
   * as read, before it is parsed: the entry is consumed and the name of the rule the uplink
   * was written by is returned (for the `echo` drop count); undefined when it is no echo.
   */
  takeEcho?(frame: Buffer, topicStart: number, topicEnd: number, payloadStart: number): string | undefined;
  /** Free per-session state. Idempotent. */
  close(): void;
}

export interface RouteHandler {
  readonly name: string;
  /** True when the route rewrites nothing (fast path, v5 properties and aliases untouched). */
  readonly passThrough: boolean;
  /** Present when south clients of this route are gateways (attach/detach per device). */
  readonly southGateway?: SouthGatewaySpec;
  openSession(hello: SouthHello): Promise<ConnectDecision>;
}
