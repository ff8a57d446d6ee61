/**
 * SUBSCRIBE and UNSUBSCRIBE from the client: the mapper's plan goes north, and the north
 * SUBACK/UNSUBACK codes are mapped back into the client's SUBACK/UNSUBACK.
 */
import type { ISubscribePacket, IUnsubscribePacket, Packet } from 'mqtt-packet';
import { subackCodes } from './accounting.js';
import { sendLocalSouth } from './downlink.js';
import type { SessionState } from './state.js';

export function southSubscribe(s: SessionState, p: ISubscribePacket): void {
  const plan = s.mapper!.subscribe(p);
  if (plan.disconnect) {
    s.close(plan.disconnect);
    return;
  }
  const reply = (northCodes: number[]) => {
    s.south.write({
      cmd: 'suback',
      messageId: p.messageId,
      granted: subackCodes(plan, northCodes, s.version),
    });
    if (plan.south?.length) sendLocalSouth(s, plan.south);
  };
  if (plan.north.length === 0 || !s.north) {
    reply([]);
    return;
  }
  s.north.subscribe(plan.north, plan.properties).then(reply, () => {
    // Its own north connection closed: the session closes with it. A gateway device's
    // session stays while the shared connection reconnects (or renews its credentials): the
    // device is answered, every filter that depended on the north failed (0x80).
    if (s.closed) return;
    s.log.warn({ filters: p.subscriptions.length }, 'north subscription cut by the connection loss: refused');
    const failed = plan.north.map(() => 0x80);
    s.south.write({ cmd: 'suback', messageId: p.messageId, granted: subackCodes(plan, failed, s.version) });
  });
}

export function southUnsubscribe(s: SessionState, p: IUnsubscribePacket): void {
  const plan = s.mapper!.unsubscribe(p);
  const reply = (codes: number[]) => {
    const packet: Packet = { cmd: 'unsuback', messageId: p.messageId, granted: [] };
    if (s.version === 5) packet.granted = p.unsubscriptions.map((_, i) => codes[i] ?? 0);
    s.south.write(packet);
  };
  if (plan.ackOnly || plan.north.length === 0 || !s.north) {
    reply([]);
    return;
  }
  const passCodes = plan.north.length === p.unsubscriptions.length;
  s.north.unsubscribe(plan.north, p.properties).then(
    (codes) => reply(passCodes ? codes : []),
    () => {
      // As for SUBSCRIBE: a gateway device's session outlives the shared connection. Its
      // filters are not made again on the next connection, so they are gone either way.
      if (s.closed) return;
      s.log.warn({ filters: p.unsubscriptions.length }, 'north unsubscription cut by the connection loss');
      reply([]);
    },
  );
}
