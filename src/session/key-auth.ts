/**
 * A client accepted without credentials on a route whose dialect takes keys on topics
 * (EVRYTHNG's MQTT over WebSocket: `subscribe('/thngs/{id}/properties?access_token=KEY')`).
 * Its session is online with no north side and a mapper that refuses everything, until a
 * SUBSCRIBE filter or PUBLISH topic carries a key. The route is then asked again, the key
 * standing in for the CONNECT's password:
 * - refused: counted and logged with the route's reason (never the key); the packet is
 *   answered by the refusing mapper (0x80 for a filter carrying a key, a publish dropped) and
 *   the connection stays unauthenticated;
 * - accepted: the session becomes what a CONNECT with that key makes (mapper, quirks, north
 *   connection, automatic subscriptions), then the packet is handled by it. A north side
 *   that cannot be opened answers the packet with failures and closes, with the north reason.
 * A connection that gives no accepted key within KEY_WAIT_MS is closed (`key_timeout`), and
 * one whose KEY_ATTEMPTS-th key is refused too (`key_attempts`): guessing keys then costs a
 * connection per few guesses, as guessing a CONNECT password does.
 */
import type { IPublishPacket, ISubscribePacket, Packet } from 'mqtt-packet';
import type { ConnectDecision } from '../core/contract.js';
import { adoptNorth, openNorthSide, southHello, startNorth } from './connect.js';
import { sendLocalSouth } from './downlink.js';
import type { NorthOpened, NorthRefusal } from './north-open.js';
import type { SessionState } from './state.js';

/** How long a connection without credentials may stay without an accepted key (ms). */
export const KEY_WAIT_MS = 30_000;
/** Refused keys after which the connection is closed. */
export const KEY_ATTEMPTS = 5;

/** The key a PUBLISH topic or the first SUBSCRIBE filter carrying one gives, if any. */
export function keyOfPacket(s: SessionState, p: Packet): string | undefined {
  const w = s.awaitingKey;
  if (!w || w.refused === p) return undefined;
  if (p.cmd === 'publish') return w.keyOf(p.topic);
  if (p.cmd !== 'subscribe') return undefined;
  for (const sub of p.subscriptions) {
    const key = w.keyOf(sub.topic);
    if (key !== undefined) return key;
  }
  return undefined;
}

/** Opens the session with `key`; resolves to the packet to handle next (none when answered). */
export async function authenticate(
  s: SessionState,
  p: IPublishPacket | ISubscribePacket,
  key: string,
): Promise<Packet | undefined> {
  const w = s.awaitingKey!;
  const route = s.ctx.route();
  let d: ConnectDecision;
  try {
    d = await route.openSession(southHello(s, w.connect, key));
  } catch (err) {
    s.log.error({ err: (err as Error).message }, 'route failed to open the session');
    s.close('route_error');
    return undefined;
  }
  if (s.closed) {
    if (d.accept) d.mapper.close();
    return undefined;
  }
  if (!d.accept || d.awaitsKey) {
    if (d.accept) d.mapper.close();
    const reason = d.accept ? 'bad_credentials' : d.reason;
    s.ctx.metrics.authFailuresTotal.labels(reason).inc();
    if (s.ctx.repeats?.allow('info', 'key on a topic refused', reason) ?? true)
      s.log.info({ reason }, 'key on a topic refused');
    w.failures = (w.failures ?? 0) + 1;
    if (w.failures >= KEY_ATTEMPTS) {
      s.close('key_attempts');
      return undefined;
    }
    // Handled next by the refusing mapper, not tried again.
    w.refused = p;
    return p;
  }
  s.awaitingKey = undefined;
  s.mapper?.close();
  s.mapper = d.mapper;
  s.quirks = d.quirks;
  s.routeName = route.name;
  let opened: NorthOpened | undefined;
  try {
    opened = await openNorthSide(s, d.north);
  } catch (err) {
    const reason = (err as NorthRefusal).reason ?? 'north_error';
    if (!s.closed && p.cmd === 'subscribe')
      s.south.write({ cmd: 'suback', messageId: p.messageId, granted: p.subscriptions.map(() => 0x80) });
    s.close(reason);
    return undefined;
  }
  if (!adoptNorth(s, opened)) return undefined;
  // Relays made while there was no north (a refused publish acknowledged) point nowhere.
  s.dropRelays();
  const online = startNorth(s, s.north, opened?.connack, opened?.autoSent === true);
  if (online) {
    const outs = await online;
    if (s.closed) return undefined;
    if (outs.length) sendLocalSouth(s, outs);
  }
  return p;
}
