/**
 * Keeps MQTT 5 properties in the order their sender wrote them. mqtt-packet parses properties
 * into an object that groups equal user-property keys (a=1, b=2, a=3 becomes
 * `{ a: [1, 3], b: 2 }`) and writes them back grouped, where the object's key order puts
 * them; MQTT 5 §3.3.2.3.7 requires a server to keep the order of user properties it forwards.
 *
 * When a parsed packet carries user properties, its raw property block is remembered, keyed by
 * the parsed `userProperties` object (the session and the mappings pass it on by reference).
 * When a packet holding that object is generated, its property block is put back in the
 * sender's order: the whole block when it holds the same properties (then it is byte for byte
 * what was sent), else the user properties alone when those are the same. Reordering keeps
 * the block's length, so the rewrite is in place.
 */
import { bodyStart, type Range, readVarint } from './bytes.js';

/** Raw property blocks as received, by the parsed userProperties object they produced. */
const received = new WeakMap<object, Buffer>();

const USER_PROPERTY = 0x26;

/** Remembers the raw block a parsed properties object came from, when it has user properties. */
export function rememberOrder(
  properties: { userProperties?: object } | undefined,
  frame: Buffer,
  block?: Range,
): void {
  if (properties?.userProperties === undefined || !block) return;
  received.set(properties.userProperties, Buffer.from(frame.subarray(block.start, block.end)));
}

/**
 * Remembers the property order of a parsed PUBLISH frame when mqtt-packet would write it back
 * otherwise: a user-property key repeats, or other properties come between user properties.
 * A PUBLISH whose order survives (the usual case) costs one walk of its property block.
 */
export function rememberPublish(
  properties: { userProperties?: Record<string, unknown> } | undefined,
  frame: Buffer,
): void {
  const user = properties?.userProperties;
  if (user === undefined) return;
  const block = publishProperties(frame);
  if (!block) return;
  if (repeatsKeys(user) || !userPropertiesTogether(frame, block)) rememberOrder(properties, frame, block);
}

function repeatsKeys(userProperties: Record<string, unknown>): boolean {
  for (const k in userProperties) if (Array.isArray(userProperties[k])) return true;
  return false;
}

/**
 * Puts the property block of a generated packet back in the order it was received; `locate`
 * finds the block in `out` (called only when there is an order to restore).
 */
export function restoreOrder(
  properties: { userProperties?: object } | undefined,
  out: Buffer,
  locate: (out: Buffer) => Range | undefined,
): void {
  const user = properties?.userProperties;
  const raw = user === undefined ? undefined : received.get(user);
  if (!raw) return;
  const block = locate(out);
  if (!block) return;
  const gen = out.subarray(block.start, block.end);
  if (gen.equals(raw)) return;
  const sent = entries(raw);
  const made = entries(gen);
  if (!sent || !made) return;
  if (raw.length === gen.length && sameEntries(sent, made)) {
    raw.copy(out, block.start);
    return;
  }
  const sentUser = sent.filter(isUserProperty);
  if (!sameEntries(sentUser, made.filter(isUserProperty))) return;
  let k = 0;
  const parts = made.map((e) => (isUserProperty(e) ? sentUser[k++]! : e));
  Buffer.concat(parts).copy(out, block.start);
}

/** The property block (without its length prefix) of a whole MQTT 5 PUBLISH frame. */
export function publishProperties(frame: Buffer): Range | undefined {
  let off = bodyStart(frame);
  if (off + 2 > frame.length) return undefined;
  off += 2 + frame.readUInt16BE(off);
  if ((frame[0]! & 0x06) !== 0) off += 2; // packet identifier when QoS > 0
  const len = readVarint(frame, off, frame.length);
  if (!len || len[1] + len[0] > frame.length) return undefined;
  return { start: len[1], end: len[1] + len[0] };
}

function isUserProperty(e: Buffer): boolean {
  return e[0] === USER_PROPERTY;
}

function sameEntries(a: Buffer[], b: Buffer[]): boolean {
  if (a.length !== b.length) return false;
  const x = [...a].sort(Buffer.compare);
  const y = [...b].sort(Buffer.compare);
  return x.every((e, i) => e.equals(y[i]!));
}

/** Value sizes of fixed-size properties, by identifier (MQTT 5 §2.2.2.2). */
const FIXED: Record<number, number> = {
  1: 1, // payload format indicator
  2: 4, // message expiry interval
  17: 4, // session expiry interval
  19: 2, // server keep alive
  23: 1, // request problem information
  24: 4, // will delay interval
  25: 1, // request response information
  33: 2, // receive maximum
  34: 2, // topic alias maximum
  35: 2, // topic alias
  36: 1, // maximum QoS
  37: 1, // retain available
  39: 4, // maximum packet size
  40: 1, // wildcard subscription available
  41: 1, // subscription identifiers available
  42: 1, // shared subscription available
};
/** Properties whose value is a UTF-8 string or binary data (2-byte length). */
const LENGTH_PREFIXED = new Set([0x03, 0x08, 0x09, 0x12, 0x15, 0x16, 0x1a, 0x1c, 0x1f]);
const SUBSCRIPTION_IDENTIFIER = 0x0b;

/** Offset just past the property at `off` of `buf` (block ending at `end`), or -1 if unreadable. */
function entryEnd(buf: Buffer, start: number, end: number): number {
  let off = start;
  const id = buf[off++]!;
  const fixed = FIXED[id];
  if (fixed !== undefined) off += fixed;
  else if (LENGTH_PREFIXED.has(id) || id === USER_PROPERTY) {
    for (let i = id === USER_PROPERTY ? 2 : 1; i > 0; i--) {
      if (off + 2 > end) return -1;
      off += 2 + buf.readUInt16BE(off);
    }
  } else if (id === SUBSCRIPTION_IDENTIFIER) {
    const v = readVarint(buf, off, end);
    if (!v) return -1;
    off = v[1];
  } else return -1;
  return off > end ? -1 : off;
}

/** Splits a property block into its properties (identifier and value), or undefined if unreadable. */
function entries(block: Buffer): Buffer[] | undefined {
  const out: Buffer[] = [];
  for (let off = 0; off < block.length; ) {
    const next = entryEnd(block, off, block.length);
    if (next < 0) return undefined;
    out.push(block.subarray(off, next));
    off = next;
  }
  return out;
}

/**
 * True when the user properties of the block come one after another: mqtt-packet then writes
 * the block back in its own order (each property name where it first came), unless a
 * user-property key repeats. Walks the block without allocating.
 */
function userPropertiesTogether(buf: Buffer, block: Range): boolean {
  let state = 0; // 0: none yet, 1: in the user properties, 2: past them
  for (let off = block.start; off < block.end; ) {
    const user = buf[off] === USER_PROPERTY;
    if (user && state === 2) return false;
    if (user) state = 1;
    else if (state === 1) state = 2;
    off = entryEnd(buf, off, block.end);
    if (off < 0) return true; // unreadable: nothing to restore
  }
  return true;
}
