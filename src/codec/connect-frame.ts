/**
 * Reads a CONNECT frame's layout from its raw bytes: where the connect flags byte and the
 * property blocks are, and whether the flags and lengths obey the rules mqtt-packet's parser
 * does not check (its parsed object hides the flags): MQTT 3.1.1 §3.1.2.3, §3.1.2.6, §3.1.2.9
 * and MQTT 5 §3.1.2.3, §3.1.2.6. These are the checks mosquitto makes before it answers; a
 * CONNECT failing one is closed without a CONNACK, as mosquitto does.
 *
 * It also writes CONNECTs: mqtt-packet refuses an empty client identifier with clean start 0,
 * which MQTT 5 allows (the server assigns one), and reorders user properties (property-order.ts).
 */
import type { IConnectPacket } from 'mqtt-packet';
import { bodyStart, encodeVarint, type Range, readVarint } from './bytes.js';
import { rememberOrder, restoreOrder } from './property-order.js';
import mqtt from './quiet-mqtt-packet.js';

export interface ConnectLayout {
  /** Protocol level (3, 4 or 5, bridge bit removed). */
  version: number;
  /** Offset of the connect flags byte. */
  flagsAt: number;
  /** MQTT 5: the CONNECT properties, without their length prefix. */
  properties?: Range;
  /** MQTT 5: the will properties, without their length prefix. */
  willProperties?: Range;
  /** Why the CONNECT is malformed (a close reason), or undefined when it is well-formed. */
  violation?: string;
}

const WILL = 0x04;
const WILL_QOS = 0x18;
const WILL_RETAIN = 0x20;
const PASSWORD = 0x40;
const USERNAME = 0x80;

/**
 * The layout of a whole CONNECT frame, or undefined when it is not one this reader can follow
 * (unknown protocol name or level, a field running past the end): the parser then reports it.
 */
export function connectLayout(frame: Buffer): ConnectLayout | undefined {
  const end = frame.length;
  let off = bodyStart(frame);
  // Skips a 2-byte-length field; -1 when it runs past the end.
  const skipField = (at: number): number => {
    if (at < 0 || at + 2 > end) return -1;
    const next = at + 2 + frame.readUInt16BE(at);
    return next <= end ? next : -1;
  };
  const name = skipField(off);
  if (name < 0) return undefined;
  const protocol = frame.toString('latin1', off + 2, name);
  if (protocol !== 'MQTT' && protocol !== 'MQIsdp') return undefined;
  off = name;
  if (off + 4 > end) return undefined;
  const version = frame[off]! & 0x7f;
  if (version !== 3 && version !== 4 && version !== 5) return undefined;
  const flagsAt = off + 1;
  const flags = frame[flagsAt]!;
  off = flagsAt + 3; // flags, keepalive
  const layout: ConnectLayout = { version, flagsAt };
  const block = (): Range | undefined => {
    const len = readVarint(frame, off, end);
    if (!len || len[1] + len[0] > end) return undefined;
    off = len[1] + len[0];
    return { start: len[1], end: off };
  };
  if (version === 5) {
    layout.properties = block();
    if (!layout.properties) return undefined;
  }
  off = skipField(off); // client identifier
  if (off < 0) return undefined;
  if (flags & WILL) {
    if (version === 5) {
      layout.willProperties = block();
      if (!layout.willProperties) return undefined;
    }
    off = skipField(skipField(off)); // will topic, will payload
    if (off < 0) return undefined;
  }
  if (flags & USERNAME) off = skipField(off);
  if (flags & PASSWORD) off = skipField(off);
  if (off < 0) return undefined;
  layout.violation = flagViolation(flags, version) ?? (off !== end ? 'connect_surplus_bytes' : undefined);
  return layout;
}

function flagViolation(flags: number, version: number): string | undefined {
  // MQTT-3.1.2-3: the reserved flag is zero (MQTT 3.1 left it unchecked).
  if (version !== 3 && flags & 0x01) return 'connect_reserved_flag';
  // MQTT-3.1.2-14: will QoS 3 is invalid.
  if ((flags & WILL_QOS) === WILL_QOS) return 'connect_will_qos';
  // MQTT-3.1.2-11, -13, -15: no will QoS or retain without the will flag.
  if (version !== 3 && !(flags & WILL) && flags & (WILL_QOS | WILL_RETAIN)) return 'connect_will_flags';
  // MQTT-3.1.2-22 (3.1.1; MQTT 5 allows it): no password without a username.
  if (version !== 5 && !(flags & USERNAME) && flags & PASSWORD) return 'connect_password_without_username';
  return undefined;
}

const CLEAN_START = 0x02;

/** Remembers the property order of a parsed CONNECT (its own and its will's). */
export function rememberConnect(p: IConnectPacket, frame: Buffer, layout: ConnectLayout | undefined): void {
  if (!layout) return;
  rememberOrder(p.properties, frame, layout.properties);
  rememberOrder(p.will?.properties, frame, layout.willProperties);
}

/** The bytes of a CONNECT, properties in the order they were received. */
export function encodeConnect(p: IConnectPacket, opts: { protocolVersion: number }): Buffer {
  const emptyId = !p.clientId && p.clean === false;
  // MQTT 5 allows a password without a username (§3.1.2.9); mqtt-packet refuses to write one.
  const noUser = opts.protocolVersion === 5 && p.password !== undefined && p.username === undefined;
  const ordered =
    p.properties?.userProperties !== undefined || p.will?.properties?.userProperties !== undefined;
  if (!emptyId && !noUser && !ordered) return mqtt.generate(p, opts);
  let out = mqtt.generate(
    { ...p, ...(emptyId ? { clean: true } : {}), ...(noUser ? { username: '' } : {}) },
    opts,
  );
  const layout = connectLayout(out);
  if (!layout) return out;
  restoreOrder(p.properties, out, () => layout.properties);
  restoreOrder(p.will?.properties, out, () => layout.willProperties);
  if (emptyId) out[layout.flagsAt] = out[layout.flagsAt]! & ~CLEAN_START;
  if (noUser) {
    // Drop the empty username written in its place (the field just before the password).
    out[layout.flagsAt] = out[layout.flagsAt]! & ~USERNAME;
    const password = 2 + Buffer.byteLength(p.password!);
    const start = bodyStart(out);
    const body = Buffer.concat([
      out.subarray(start, out.length - password - 2),
      out.subarray(out.length - password),
    ]);
    out = Buffer.concat([out.subarray(0, 1), encodeVarint(body.length), body]);
  }
  return out;
}
