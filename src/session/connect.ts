/**
 * CONNECT: the route decides (refuse, or accept with a mapper, quirks and a north plan), the
 * north side is opened, then the client gets its CONNACK, the automatic subscriptions go north
 * and the packets that arrived meanwhile are replayed.
 */
import type { IConnackPacket, IConnectPacket } from 'mqtt-packet';
import type { NorthPlan, PublishOut, SouthHello } from '../core/contract.js';
import { connackFor, REFUSED_SERVER_UNAVAILABLE, type ReasonPair } from './codes.js';
import { type NorthOpened, type NorthRefusal, openNorth } from './north-open.js';
import { autoSubscribed, NorthSide } from './north-side.js';
import { openGauge, totalCounter } from './session-metrics.js';
import type { SessionState } from './state.js';

export async function southConnect(s: SessionState, connect: IConnectPacket): Promise<void> {
  s.state = 'connecting';
  s.south.pause();
  s.version = connect.protocolVersion ?? 4;
  s.south.setProtocolVersion(s.version);
  // A gateway's attached device is silent between messages: the gateway's own connection is
  // the one whose keepalive is enforced (by its front).
  s.keepaliveMs = s.info.gateway ? 0 : (connect.keepalive ?? 0) * 1500;
  s.sessionExpiry = connect.properties?.sessionExpiryInterval ?? 0;
  // MQTT 3.1: the client identifier must be 1 to 23 characters (CONNACK 2 otherwise).
  if (s.version === 3 && !connect.clientId) {
    refuse(s, { returnCode: 2, reasonCode: 0x85 }, 'identifier_rejected');
    return;
  }
  const route = s.ctx.route();
  s.routeName = route.name;
  let decision: Awaited<ReturnType<typeof route.openSession>>;
  try {
    decision = await route.openSession(southHello(s, connect));
  } catch (err) {
    s.log.error({ err: (err as Error).message }, 'route failed to open the session');
    refuse(s, REFUSED_SERVER_UNAVAILABLE, 'route_error');
    return;
  }
  if (s.closed) {
    if (decision.accept) decision.mapper.close();
    return;
  }
  if (!decision.accept) {
    s.ctx.metrics.authFailuresTotal.labels(decision.reason).inc();
    if (s.ctx.repeats?.allow('info', 'connection refused', decision.reason) ?? true)
      s.log.info({ reason: decision.reason }, 'connection refused');
    refuse(s, { returnCode: decision.returnCode, reasonCode: decision.reasonCode }, decision.reason);
    return;
  }
  s.mapper = decision.mapper;
  s.quirks = decision.quirks;
  s.passThrough = route.passThrough;
  s.dialect = decision.dialect;
  // No credentials yet: online without a north side until a topic gives a key (key-auth.ts).
  if (decision.awaitsKey) s.awaitingKey = { connect, keyOf: decision.awaitsKey.keyOf, since: Date.now() };
  let opened: NorthOpened | undefined;
  try {
    opened = await openNorthSide(s, decision.north);
  } catch (err) {
    const r = err as NorthRefusal;
    // The broker closed on the CONNECT without answering: do the same (transparency).
    if (r.reason === 'north_closed') s.close(r.reason);
    else refuse(s, r.code ?? REFUSED_SERVER_UNAVAILABLE, r.reason ?? 'north_error', r.connack);
    return;
  }
  if (!adoptNorth(s, opened)) return;
  goOnline(s, opened?.connack, opened?.autoSent === true);
}

/**
 * Opens the north side a decision plans, for the session's mapper and quirks (set from the
 * decision): its automatic subscriptions go with the CONNECT. Rejects with a NorthRefusal.
 */
export function openNorthSide(s: SessionState, plan: NorthPlan): Promise<NorthOpened | undefined> {
  return openNorth(
    plan,
    s.quirks,
    s.ctx,
    s.routeName,
    () => s.log,
    new NorthSide(s),
    s.mapper!.autoSubscribe(),
  );
}

/** Keeps the opened north side; false (it is destroyed) when the session closed meanwhile. */
export function adoptNorth(s: SessionState, opened: NorthOpened | undefined): boolean {
  if (!opened) return true;
  s.north = opened.port;
  s.northMaxQos = opened.maxQos;
  if (!s.closed) return true;
  s.north.destroy();
  return false;
}

/** What the route is told about the client; `topicKey`: a key it gave on a topic since. */
export function southHello(s: SessionState, connect: IConnectPacket, topicKey?: string): SouthHello {
  const info = s.info;
  return {
    connect,
    listener: info.listener,
    peerCommonName: info.peerCommonName,
    // Read only by a route that asks (a system call on a TCP socket; see listeners.ts).
    get remoteAddress() {
      return info.remoteAddress;
    },
    gateway: info.gateway,
    ...(topicKey !== undefined ? { topicKey } : {}),
  };
}

/** `autoSent`: the automatic subscriptions went out with the CONNECT (or a gateway's attach). */
function goOnline(s: SessionState, northConnack: IConnackPacket | undefined, autoSent: boolean): void {
  const metrics = s.ctx.metrics;
  const sessionPresent =
    s.quirks.sessionPresent === 'always'
      ? true
      : s.quirks.sessionPresent === 'never'
        ? false
        : Boolean(northConnack?.sessionPresent);
  const connack: IConnackPacket = { cmd: 'connack', sessionPresent, returnCode: 0, reasonCode: 0 };
  if (s.version === 5 && northConnack?.properties) {
    connack.properties = northConnack.properties;
    s.southAliasMax = northConnack.properties.topicAliasMaximum ?? 0;
  }
  s.south.write(connack);
  const north = s.north;
  s.state = 'online';
  s.wentOnline = true;
  openGauge(metrics, s.info.listener, s.dialect).inc();
  totalCounter(metrics, s.info.listener, s.dialect).inc();
  const online = startNorth(s, north, northConnack, autoSent);
  if (online)
    s.runAsync(
      Promise.resolve(online).then((outs) => ({ south: outs })),
      null,
    );
  s.flushQueue();
}

/**
 * The north side is open and the client has its CONNACK: the mapper learns what the broker
 * kept, the automatic subscriptions go out, north traffic starts. Returns what the mapper has
 * for the client once online (e.g. offline sync), if anything.
 */
export function startNorth(
  s: SessionState,
  north: SessionState['north'],
  northConnack: IConnackPacket | undefined,
  autoSent: boolean,
): PublishOut[] | Promise<PublishOut[]> | undefined {
  const mapper = s.mapper!;
  if (northConnack) mapper.onNorthConnack?.(northConnack.sessionPresent);
  const auto = mapper.autoSubscribe();
  if (auto.length && north && !autoSent) {
    north.subscribe(auto).then(
      (granted) => autoSubscribed(s, granted),
      () => {
        /* the connection closed first: the session closes with it */
      },
    );
  }
  north?.start();
  return mapper.onOnline?.();
}

export function refuse(
  s: SessionState,
  code: ReasonPair,
  reason: string,
  northConnack?: IConnackPacket,
): void {
  s.south.write(connackFor(s.version, code, northConnack));
  s.close(reason);
}
