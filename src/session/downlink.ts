/**
 * The downlink path (north → south): a north PUBLISH through topic aliases and the mapper into
 * the downlink relay, echoes of the device's own uplinks dropped on their raw frame, the
 * proxy's own messages to the client, and the north side's DISCONNECT and gateway errors.
 */
import type { IDisconnectPacket, IPublishPacket, QoS } from 'mqtt-packet';
import type { Outcome, PublishOut } from '../core/contract.js';
import { countMessage, observeTranslate, sampleTranslate } from './accounting.js';
import { resolveAlias } from './aliases.js';
import type { SessionState } from './state.js';

export function capQos(outs: PublishOut[], max: QoS): void {
  for (const o of outs) if (o.qos > max) o.qos = max;
}

/** Messages the proxy itself sends the client (mapper outputs with no north source). */
export function sendLocalSouth(s: SessionState, outs: PublishOut[]): void {
  capQos(outs, Math.min(1, s.quirks.maxDownlinkQos) as QoS);
  s.down!.forward(null, outs);
}

export function northPublish(s: SessionState, p: IPublishPacket): void {
  if (s.state !== 'online') return;
  if (!s.passThrough && p.properties?.topicAlias !== undefined) {
    s.northAliases ??= new Map();
    if (!resolveAlias(p, s.northAliases)) {
      s.close('north_bad_topic_alias');
      return;
    }
  }
  if (s.passThrough) {
    if (p.qos > s.quirks.maxDownlinkQos) p.qos = s.quirks.maxDownlinkQos;
    s.down!.forward(p, [p as PublishOut]);
    if (s.south.blocked) s.north?.pause();
    return;
  }
  const timed = sampleTranslate();
  const t0 = timed ? process.hrtime.bigint() : 0n;
  const o = s.mapper!.downlink(p);
  if (timed) observeTranslate(s.ctx.metrics, s.routeName, 'downlink', t0);
  if (o.verdict === 'disconnect') {
    countMessage(s.ctx.metrics, s.log, s.routeName, 'downlink', o, 'rejected', p.topic);
    s.close(o.reason ?? 'downlink_rejected');
    return;
  }
  let outs = o.verdict === 'drop' ? [] : (o.south ?? []);
  capQos(outs, Math.min(p.qos, s.quirks.maxDownlinkQos) as QoS);
  // A device on a shared gateway connection whose socket is full: the connection cannot be
  // paused for it (every device on it would stall), so its QoS 0 copies are dropped rather
  // than held without bound, as a broker drops them for a slow subscriber.
  const slow = outs.length > 0 && s.south.blocked && s.north?.shared === true;
  if (slow) outs = outs.filter((x) => x.qos > 0);
  if (o.verdict === 'drop')
    countMessage(s.ctx.metrics, s.log, s.routeName, 'downlink', o, 'dropped', p.topic);
  else if (slow && outs.length === 0)
    countMessage(s.ctx.metrics, s.log, s.routeName, 'downlink', dropped('south_slow', o.rule), 'dropped');
  else if (!s.passThrough) countMessage(s.ctx.metrics, s.log, s.routeName, 'downlink', o, 'translated');
  s.down!.forward(p, outs);
  if (o.north?.length) {
    capQos(o.north, 1);
    s.up!.forward(null, o.north);
  }
  if (s.south.blocked) s.north?.pause();
}

/**
 * A north PUBLISH frame before it is parsed: the echo of one of the device's own uplinks is
 * recognised on its bytes and dropped (QoS 1: acknowledged), without parsing or mapping it.
 */
export function northRawPublish(
  s: SessionState,
  frame: Buffer,
  qos: number,
  messageId: number,
  ts: number,
  te: number,
  ps: number,
): boolean {
  // QoS 2 takes the relay's PUBREC/PUBREL/PUBCOMP bookkeeping: parsed as usual.
  if (qos > 1 || s.state !== 'online') return false;
  const rule = s.mapper?.takeEcho?.(frame, ts, te, ps);
  if (rule === undefined) return false;
  countMessage(s.ctx.metrics, s.log, s.routeName, 'downlink', dropped('echo', rule), 'dropped');
  if (qos === 1) s.north?.send({ cmd: 'puback', messageId });
  return true;
}

export function northGatewayError(s: SessionState, e: { type: string; description?: string }): void {
  const o = s.mapper?.onGatewayError?.(e);
  if (!o) return;
  if (o.verdict === 'disconnect') {
    s.close(o.reason ?? 'gateway_error');
    return;
  }
  if (o.south?.length) sendLocalSouth(s, o.south);
}

export function northDisconnect(s: SessionState, p: IDisconnectPacket): void {
  if (s.version === 5) s.south.write(p);
  s.close('north_disconnect');
}

/** The outcome of a downlink dropped for `reason` (echo, south_slow), one per rule: no object per message. */
const dropOutcomes = new Map<string, Outcome>();
function dropped(reason: 'echo' | 'south_slow', rule = ''): Outcome {
  const key = `${reason}\0${rule}`;
  let o = dropOutcomes.get(key);
  if (!o) {
    o = { verdict: 'drop', reason, rule };
    dropOutcomes.set(key, o);
  }
  return o;
}
