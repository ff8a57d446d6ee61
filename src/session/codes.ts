/**
 * CONNACK codes: MQTT 3.1.1 return codes and MQTT 5 reason codes, and the mapping between
 * them when the two sides speak different versions.
 */
import type { IConnackPacket } from 'mqtt-packet';

export interface ReasonPair {
  /** MQTT 3.1.1 CONNACK return code. */
  returnCode: number;
  /** MQTT 5 CONNACK reason code. */
  reasonCode: number;
}

export const REFUSED_SERVER_UNAVAILABLE: ReasonPair = { returnCode: 3, reasonCode: 0x88 };

/** v3.1.1 return code → v5 reason code. */
const V4_TO_V5: Record<number, number> = { 1: 0x84, 2: 0x85, 3: 0x88, 4: 0x86, 5: 0x87 };
/** v5 reason code → the closest v3.1.1 return code. */
const V5_TO_V4: Record<number, number> = {
  132: 1,
  133: 2,
  136: 3,
  137: 3,
  134: 4,
  140: 4,
  135: 5,
  138: 5,
};

/** The code to give the client when the north broker refused (or could not be reached). */
export function northRefusalCode(connack?: IConnackPacket): ReasonPair {
  if (!connack) return REFUSED_SERVER_UNAVAILABLE;
  if (connack.reasonCode !== undefined && connack.reasonCode >= 0x80) {
    return { reasonCode: connack.reasonCode, returnCode: V5_TO_V4[connack.reasonCode] ?? 3 };
  }
  const rc = connack.returnCode ?? 3;
  return { returnCode: rc, reasonCode: V4_TO_V5[rc] ?? 0x88 };
}

/** A refusing CONNACK in the client's protocol version (v5 keeps the broker's properties). */
export function connackFor(version: number, code: ReasonPair, northConnack?: IConnackPacket): IConnackPacket {
  if (version === 5) {
    const p: IConnackPacket = { cmd: 'connack', sessionPresent: false, reasonCode: code.reasonCode };
    if (northConnack?.properties?.reasonString)
      p.properties = { reasonString: northConnack.properties.reasonString };
    return p;
  }
  return { cmd: 'connack', sessionPresent: false, returnCode: code.returnCode };
}
