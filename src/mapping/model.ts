/**
 * The canonical message model: what every dialect decodes to and encodes from. N dialect
 * files give N×N translations because each only knows its own topics and this model.
 */

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

/** One property value. `value` is decoded lazily: `raw` keeps the original bytes when a codec took them whole. */
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

/** Reads a sample's value, parsing the raw bytes as JSON when they are JSON, else as a UTF-8 string. */
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
      v = JSON.parse(text);
    } catch {
      v = text;
    }
  }
  s.value = v;
  return v;
}

/** Serialises a sample's value as a raw payload: the original bytes when there are any. */
export function sampleBytes(s: Sample): Buffer {
  if (s.raw) return s.raw;
  const v = s.value;
  if (typeof v === 'string') return Buffer.from(v, 'utf8');
  return Buffer.from(JSON.stringify(v ?? null), 'utf8');
}
