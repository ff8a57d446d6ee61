/**
 * The uplink path (south → north): a client PUBLISH through the dialect's quirks (DUP with
 * QoS 0, payload limit, QoS 2 downgrade, retain), topic aliases and the mapper into the uplink
 * relay. Pass-through routes skip the mapper: the parsed packet is its own output.
 */
import type { IPublishPacket, QoS } from 'mqtt-packet';
import type { Outcome, PublishOut } from '../core/contract.js';
import { countMessage, observeTranslate, sampleTranslate } from './accounting.js';
import { resolveAlias } from './aliases.js';
import { capQos, sendLocalSouth } from './downlink.js';
import type { SessionState } from './state.js';

export function southPublish(s: SessionState, p: IPublishPacket): void {
  const q = s.quirks;
  if (p.qos === 0 && p.dup && q.dupWithQos0Disconnect) {
    s.close('dup_with_qos0');
    return;
  }
  if (q.maxPayloadBytes > 0 && p.payload.length > q.maxPayloadBytes) {
    s.close('payload_too_large');
    return;
  }
  // QoS 2 as QoS 0: no acknowledgement at all. As QoS 1: the client still gets its QoS 2
  // flow (PUBREC, PUBCOMP), the copies go north at QoS 1.
  if (q.qos2 === 'as_qos0' && p.qos === 2) p.qos = 0;
  if (q.retain === 'ignore') p.retain = false;
  if (!s.passThrough && s.version === 5 && p.properties?.topicAlias !== undefined) {
    // Above what the CONNACK allowed (MQTT-3.3.2-9): a protocol error, and the table's bound.
    if (p.properties.topicAlias > s.southAliasMax) {
      s.close('bad_topic_alias');
      return;
    }
    s.southAliases ??= new Map();
    if (!resolveAlias(p, s.southAliases)) {
      s.close('bad_topic_alias');
      return;
    }
  }
  if (s.passThrough) {
    // Fast path: nothing to translate, the parsed packet is its own output.
    const src = { messageId: p.messageId, qos: p.qos };
    const out = p as PublishOut;
    const cap = northQosFor(s, p);
    if (out.qos > cap) out.qos = cap;
    s.up!.forward(src, [out]);
    if (s.north?.blocked) s.south.pause();
    return;
  }
  const timed = sampleTranslate();
  const t0 = timed ? process.hrtime.bigint() : 0n;
  const outcome = s.mapper!.uplink(p);
  if (timed) observeTranslate(s.ctx.metrics, s.routeName, 'uplink', t0);
  if (outcome instanceof Promise) {
    s.runAsync(outcome, p);
    return;
  }
  applyUplink(s, p, outcome);
}

export function applyUplink(s: SessionState, p: IPublishPacket, o: Outcome): void {
  if (o.verdict === 'disconnect') {
    countMessage(s.ctx.metrics, s.log, s.routeName, 'uplink', o, 'rejected', p.topic);
    s.close(o.reason ?? 'rejected');
    return;
  }
  const north = o.verdict === 'drop' ? undefined : o.north;
  if (o.verdict === 'drop') countMessage(s.ctx.metrics, s.log, s.routeName, 'uplink', o, 'dropped', p.topic);
  else if (!s.passThrough) countMessage(s.ctx.metrics, s.log, s.routeName, 'uplink', o, 'translated');
  if (north) capQos(north, northQosFor(s, p));
  s.up!.forward(p, north ?? []);
  if (o.south) sendLocalSouth(s, o.south);
  if (s.north?.blocked) s.south.pause();
}

/** Highest QoS the copies of a client's PUBLISH get north (QoS 2 as QoS 1, the platform's cap). */
function northQosFor(s: SessionState, p: IPublishPacket): QoS {
  const q: QoS = s.quirks.qos2 === 'as_qos1' && p.qos === 2 ? 1 : p.qos;
  return Math.min(q, s.northMaxQos) as QoS;
}
