/**
 * The canonical message model: what every dialect decodes to and encodes from. N dialect
 * files give N×N translations because each only knows its own topics and this model.
 */
import { jsonText, parseJsonExact } from './json-literal.js';

/** The kinds of canonical message. */
export const KINDS = [
  'samples', // property values: [{key, value, ts?}], both directions (reported up, desired down)
  'event', // a named, opaque payload (akenza subtopic, ClearBlade events/{subfolder})
  'state', // an opaque device state document
  'config', // an opaque configuration document sent to the device
  'command', // a named, opaque command sent to the device
  'action', // a named action (EVRYTHNG actions)
  'location', // a location document
  'resource', // an opaque platform resource (EVRYTHNG Thng, collection, batch task): no fallback
  'provision', // activation request/response (Connector $provision)
  'content', // content listing request/response (Connector $content)
  'attach', // gateway control: attach a device
  'detach', // gateway control: detach a device
  'error', // an error addressed to a device or gateway
] as const;

export type Kind = (typeof KINDS)[number];

/**
 * One property value. `value` is decoded lazily: `raw` keeps the original bytes when a codec
 * took them whole. A number that JSON.stringify would not write back as it came (20 digits,
 * 23.10, 1E2, -0) is a JsonNumber holding its literal, in `value` or anywhere inside it.
 */
export interface Sample {
  key: string;
  value?: unknown;
  /** The bytes the value came from (a `value` codec); reused when re-encoded as a raw value. */
  raw?: Buffer;
  /** Timestamp in microseconds since the epoch. */
  ts?: number;
}

export interface Canonical {
  kind: Kind;
  /** Property samples (kind 'samples'). */
  samples?: Sample[];
  /** Name: event subtopic, command name, action type. */
  name?: string;
  /** Opaque payload for every kind but 'samples', passed through untouched. */
  body?: Buffer;
  /** MQTT 5 content type received with the message. */
  contentType?: string;
  /** Content type the source rule declares for its payload (used when none was received). */
  typeHint?: string;
  qos: 0 | 1 | 2;
  retain: boolean;
  /** MQTT 5 user properties, when present. */
  userProperties?: Record<string, string | string[]>;
}

export type Direction = 'up' | 'down';

/**
 * Reads a sample's value, parsing the raw bytes as JSON when they are JSON (numbers that would
 * change kept as JsonNumber), else as a UTF-8 string.
 */
export function sampleValue(s: Sample): unknown {
  if (s.value !== undefined || s.raw === undefined) return s.value;
  const text = s.raw.toString('utf8');
  let v: unknown = text;
  const c = text.charCodeAt(0);
  // JSON scalars, arrays and objects start with one of: - 0-9 " [ { t f n
  if (
    (c >= 48 && c <= 57) ||
    c === 45 ||
    c === 34 ||
    c === 91 ||
    c === 123 ||
    c === 116 ||
    c === 102 ||
    c === 110
  ) {
    try {
      v = parseJsonExact(s.raw, text);
    } catch {
      v = text;
    }
  }
  s.value = v;
  return v;
}

/**
 * A sample's value as JSON text, as `jsonText(sampleValue(s))` gives it (JSON.stringify, with
 * numbers as they came). Raw bytes that already are that text (a JSON string without escapes
 * or control characters, any JSON number, true, false, null) are used as they are: nothing is
 * parsed or re-serialised. Undefined when the value has no JSON form.
 */
export function sampleJson(s: Sample): string | undefined {
  const raw = s.value === undefined ? s.raw : undefined;
  if (raw !== undefined && raw.length > 0 && canonicalJson(raw)) return raw.toString('latin1');
  return jsonText(sampleValue(s));
}

/**
 * True when `b` is JSON text that `jsonText` of its parsed value gives back unchanged, and is
 * plain ASCII (read as latin1 it is the same text): checked byte by byte, no allocation.
 */
function canonicalJson(b: Buffer): boolean {
  const n = b.length;
  const c0 = b[0] as number;
  if (c0 === 34) {
    // A string: no escapes, no control characters, no quote inside, ASCII only.
    if (n < 2 || b[n - 1] !== 34) return false;
    for (let i = 1; i < n - 1; i++) {
      const c = b[i] as number;
      if (c < 0x20 || c > 0x7e || c === 34 || c === 92) return false;
    }
    return true;
  }
  if (c0 === 116) return b.equals(TRUE);
  if (c0 === 102) return b.equals(FALSE);
  if (c0 === 110) return b.equals(NULL);
  return numberLiteral(b);
}

/** True when `b` is exactly one number by JSON's grammar: -?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)? */
function numberLiteral(b: Buffer): boolean {
  const n = b.length;
  let i = b[0] === 45 ? 1 : 0;
  const first = b[i];
  if (first === 48) i++;
  else {
    if (!digit(first)) return false;
    while (digit(b[i])) i++;
  }
  if (i === n) return true;
  if (b[i] === 46) {
    if (!digit(b[++i])) return false;
    while (digit(b[i])) i++;
  }
  if (b[i] === 101 || b[i] === 69) {
    i++;
    if (b[i] === 43 || b[i] === 45) i++;
    if (!digit(b[i])) return false;
    while (digit(b[i])) i++;
  }
  return i === n;
}

function digit(c: number | undefined): boolean {
  return c !== undefined && c >= 48 && c <= 57;
}

const TRUE = Buffer.from('true');
const FALSE = Buffer.from('false');
const NULL = Buffer.from('null');

/** Serialises a sample's value as a raw payload: the original bytes when there are any. */
export function sampleBytes(s: Sample): Buffer {
  if (s.raw) return s.raw;
  const v = s.value;
  if (typeof v === 'string') return Buffer.from(v, 'utf8');
  return Buffer.from(jsonText(v ?? null) as string, 'utf8');
}

/**
 * Size of one value in bytes, as `sampleBytes` would write it: raw bytes as they came, a
 * string's UTF-8 bytes, anything else its JSON text. Nothing is allocated for the first two.
 */
export function sampleSize(s: Sample): number {
  if (s.raw) return s.raw.length;
  const v = s.value;
  if (typeof v === 'string') return Buffer.byteLength(v, 'utf8');
  return Buffer.byteLength(jsonText(v ?? null) ?? '', 'utf8');
}

/**
 * True when a value decoded from a payload of `payloadBytes` bytes is over `max` bytes. Raw
 * bytes are part of their payload and a string's UTF-8 bytes are at most its JSON text, so
 * values are measured only when the payload itself is over the limit (the hot path costs one
 * comparison). Numbers are written back as they came (see json-literal.ts), so a parsed value
 * is not longer than its part of the payload.
 */
export function valueOverLimit(msg: Canonical, payloadBytes: number, max: number): boolean {
  if (max <= 0 || payloadBytes <= max || msg.samples === undefined) return false;
  for (const s of msg.samples) if (sampleSize(s) > max) return true;
  return false;
}
