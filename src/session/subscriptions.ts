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
    /* north closed: the session closes with it */
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
    () => {},
  );
}
