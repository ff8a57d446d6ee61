/**
 * Payload codecs: the built-in shapes a dialect declares, with parameters, compiled once
 * into plain objects. Sample codecs turn bytes into canonical samples and back; the raw
 * codec carries an opaque body untouched.
 */
import {
  encoded,
  hasLiterals,
  isJsonObject as isObject,
  markLiterals,
  numberOf,
  parseJsonExact,
} from './json-literal.js';
import { type Canonical, type Sample, sampleBytes, sampleJson, sampleValue } from './model.js';
import { safeLevel, type Vars } from './template.js';

export const CODECS = [
  'value',
  'object',
  'key_value_list',
  'value_list',
  'batch',
  'envelope',
  'raw',
] as const;
export type CodecName = (typeof CODECS)[number];

export interface CodecSpec {
  codec?: CodecName;
  key?: string;
  value?: string;
  time?: string;
  values?: string;
  unit?: 'us' | 'ms' | 's';
  fields?: Record<string, string>;
  add?: Record<string, unknown>;
  content_type?: string;
  /** Add the current time to samples that carry none (lists and objects with a time field). */
  stamp?: boolean;
  /** raw: the body field naming the message when the topic does not (EVRYTHNG actions/all: type). */
  name?: string;
}

export interface Codec {
  readonly name: CodecName;
  /** Carries samples (else an opaque body). */
  readonly samples: boolean;
  /** One publish may carry several keys (else one key, taken from the topic). */
  readonly multiKey: boolean;
  /** The shape carries a sample's time (a time field), so readings at different times are told apart. */
  readonly timed: boolean;
  /** Content type to announce (MQTT 5), when declared. */
  readonly contentType: string | undefined;
  /**
   * A reason a sample of this key cannot be encoded, when there is one (an envelope's body
   * field would be one of the envelope's own fields).
   */
  refuses?(key: string): string | undefined;
  /** Fills `out`; returns an error reason, or undefined on success. */
  decode(payload: Buffer, key: string | undefined, out: Canonical): string | undefined;
  /**
   * Encodes samples (all for one key when !multiKey) or the message body. `nowUs` stamps
   * samples without a time where the shape has a time field; undefined (a will message, sent
   * by the broker long after it was translated): the time field is left out.
   */
  encode(msg: Canonical, samples: readonly Sample[], vars: Readonly<Vars>, nowUs: number | undefined): Buffer;
}

const UNIT: Record<string, number> = { us: 1, ms: 1000, s: 1_000_000 };

/** The payload's JSON value (numbers that JSON.stringify would change kept as written), or undefined. */
function parseJson(payload: Buffer): unknown {
  try {
    return parseJsonExact(payload);
  } catch {
    return undefined;
  }
}

/** An object for JSON output whose keys are only its own (`__proto__` is a key like any other). */
function record(): Record<string, unknown> {
  return Object.create(null) as Record<string, unknown>;
}

/** A time field in µs: a number (a JsonNumber too: times are computed on, not carried). */
function tsIn(v: unknown, factor: number): number | undefined {
  const n = numberOf(v);
  return n !== undefined && Number.isFinite(n) ? Math.round(n * factor) : undefined;
}

function tsOut(ts: number, factor: number): number {
  return factor === 1 ? ts : Math.round(ts / factor);
}

/** A string with `{var}` references, compiled to parts. */
export function compileText(text: string): (vars: Readonly<Vars>) => string {
  const parts = text.split(/(\{[A-Za-z_][A-Za-z0-9_]*\})/).filter((p) => p.length > 0);
  if (parts.length === 1 && !parts[0]?.startsWith('{')) return () => text;
  const plan = parts.map((p) => (p.startsWith('{') && p.endsWith('}') ? { v: p.slice(1, -1) } : { s: p }));
  return (vars) => {
    let out = '';
    for (const p of plan) out += 's' in p ? p.s : (vars[p.v] ?? '');
    return out;
  };
}

/** Variables referenced by `{var}` in a text. */
export function textVars(text: string): string[] {
  return [...text.matchAll(/\{([A-Za-z_][A-Za-z0-9_]*)\}/g)].map((m) => m[1] as string);
}

export function makeCodec(spec: CodecSpec, defaultName: CodecName): Codec {
  const name = spec.codec ?? defaultName;
  const factor = UNIT[spec.unit ?? 'ms'] ?? 1000;
  const ct = spec.content_type;
  const keyF = spec.key ?? 'key';
  const valueF = spec.value ?? 'value';
  const timeF = spec.time;
  const stamp = spec.stamp === true;
  const nameF = spec.name;
  switch (name) {
    case 'raw':
      return {
        name,
        samples: false,
        multiKey: true,
        timed: false,
        contentType: ct,
        decode(payload, _key, out) {
          out.body = payload;
          if (nameF !== undefined) {
            // Only a string is read here: plain JSON.parse, no scan for numbers to keep.
            let o: unknown;
            try {
              o = JSON.parse(payload.toString('utf8'));
            } catch {
              o = undefined;
            }
            const n = isObject(o) ? o[nameF] : undefined;
            if (typeof n === 'string' && safeLevel(n)) out.name = n;
          }
          return undefined;
        },
        encode: (msg) => msg.body ?? Buffer.alloc(0),
      };
    case 'value':
      return {
        name,
        samples: true,
        multiKey: false,
        timed: false,
        contentType: ct,
        decode(payload, key, out) {
          if (key === undefined) return 'no_key';
          out.samples = [{ key, raw: payload }];
          return undefined;
        },
        encode: (_msg, samples) => sampleBytes(samples[samples.length - 1] as Sample),
      };
    case 'object':
      return {
        name,
        samples: true,
        multiKey: true,
        timed: timeF !== undefined,
        contentType: ct,
        decode(payload, _key, out) {
          const o = parseJson(payload);
          if (!isObject(o)) return 'bad_payload';
          const ts = timeF ? tsIn(o[timeF], factor) : undefined;
          const samples: Sample[] = [];
          for (const k of Object.keys(o)) {
            if (k === timeF) continue;
            samples.push(ts === undefined ? { key: k, value: o[k] } : { key: k, value: o[k], ts });
          }
          if (samples.length === 0) return 'empty_payload';
          out.samples = samples;
          return undefined;
        },
        encode(_msg, samples) {
          const o = record();
          let literals = false;
          for (const s of samples) {
            const v = sampleValue(s);
            o[s.key] = v;
            if (!literals && hasLiterals(v)) literals = true;
          }
          const first = samples[0];
          if (timeF && first?.ts !== undefined) o[timeF] = tsOut(first.ts, factor);
          return Buffer.from(encoded(o, literals));
        },
      };
    case 'key_value_list':
    case 'value_list': {
      const withKey = name === 'key_value_list';
      const qKey = JSON.stringify(keyF);
      const qValue = JSON.stringify(valueF);
      const qTime = timeF ? JSON.stringify(timeF) : undefined;
      return {
        name,
        samples: true,
        multiKey: withKey,
        timed: true,
        contentType: ct,
        decode(payload, key, out) {
          const list = parseJson(payload);
          const items = Array.isArray(list) ? list : isObject(list) ? [list] : undefined;
          if (!items || items.length === 0) return 'bad_payload';
          const samples: Sample[] = [];
          for (const it of items) {
            if (!isObject(it) || !(valueF in it)) return 'bad_payload';
            const k = withKey ? it[keyF] : key;
            if (typeof k !== 'string' || k.length === 0) return 'bad_payload';
            const ts = timeF ? tsIn(it[timeF], factor) : undefined;
            samples.push(
              ts === undefined ? { key: k, value: it[valueF] } : { key: k, value: it[valueF], ts },
            );
          }
          out.samples = samples;
          return undefined;
        },
        // Written by hand (field names quoted once, at load): the same text JSON.stringify
        // gives for [{key, value, time}], without building the intermediate objects.
        encode(_msg, samples, _vars, nowUs) {
          let out = '[';
          for (let i = 0; i < samples.length; i++) {
            const s = samples[i] as Sample;
            let item = withKey ? `${qKey}:${JSON.stringify(s.key)}` : '';
            const v = sampleJson(s);
            if (v !== undefined) item += `${item ? ',' : ''}${qValue}:${v}`;
            const ts = s.ts ?? (stamp ? nowUs : undefined);
            if (qTime && ts !== undefined) item += `${item ? ',' : ''}${qTime}:${tsOut(ts, factor)}`;
            out += `${i > 0 ? ',' : ''}{${item}}`;
          }
          return Buffer.from(`${out}]`);
        },
      };
    }
    case 'batch': {
      const valuesF = spec.values ?? 'values';
      const tF = timeF ?? 'timestamp';
      return {
        name,
        samples: true,
        multiKey: true,
        timed: true,
        contentType: ct,
        decode(payload, _key, out) {
          const list = parseJson(payload);
          if (!Array.isArray(list) || list.length === 0) return 'bad_payload';
          const samples: Sample[] = [];
          for (const it of list) {
            if (!isObject(it) || !isObject(it[valuesF])) return 'bad_payload';
            const ts = tsIn(it[tF], factor);
            const vals = it[valuesF] as Record<string, unknown>;
            for (const k of Object.keys(vals))
              samples.push(ts === undefined ? { key: k, value: vals[k] } : { key: k, value: vals[k], ts });
          }
          if (samples.length === 0) return 'empty_payload';
          out.samples = samples;
          return undefined;
        },
        encode(_msg, samples, _vars, nowUs) {
          const groups: Array<Record<string, unknown>> = [];
          let cur: Record<string, unknown> | undefined;
          let curTs: number | undefined;
          for (const s of samples) {
            const ts = s.ts ?? nowUs;
            if (!cur || ts !== curTs) {
              cur = record();
              curTs = ts;
              groups.push(
                ts === undefined ? { [valuesF]: cur } : { [tF]: tsOut(ts, factor), [valuesF]: cur },
              );
            }
            const v = sampleValue(s);
            cur[s.key] = v;
            if (hasLiterals(v)) {
              markLiterals(cur);
              markLiterals(groups[groups.length - 1] as object);
              markLiterals(groups);
            }
          }
          return Buffer.from(encoded(groups, hasLiterals(groups)));
        },
      };
    }
    case 'envelope': {
      const fields = spec.fields ?? {};
      // A topic key's body field: its alias when it has one of its own (not Object.prototype's).
      const fieldOf = (key: string): string => (Object.hasOwn(fields, key) ? (fields[key] as string) : key);
      const add: Array<[string, unknown | ((v: Readonly<Vars>) => string)]> = Object.entries(
        spec.add ?? {},
      ).map(([k, v]) => [k, typeof v === 'string' ? compileText(v) : v]);
      const tF = timeF ?? 'time';
      const own = new Set([tF, ...add.map(([k]) => k)]);
      return {
        name,
        samples: true,
        multiKey: false,
        timed: true,
        contentType: ct,
        // A body field named like one of the envelope's own fields would overwrite it (or be
        // overwritten): such a sample is not sent.
        refuses: (key) => (own.has(fieldOf(key)) ? 'reserved_field' : undefined),
        decode(payload, key, out) {
          const o = parseJson(payload);
          if (!isObject(o) || key === undefined) return 'bad_payload';
          const field = fieldOf(key);
          if (own.has(field)) return 'reserved_field';
          if (!Object.hasOwn(o, field)) return 'bad_payload';
          const ts = Object.hasOwn(o, tF) ? tsIn(o[tF], factor) : undefined;
          out.samples = [ts === undefined ? { key, value: o[field] } : { key, value: o[field], ts }];
          return undefined;
        },
        encode(_msg, samples, vars, nowUs) {
          const s = samples[samples.length - 1] as Sample;
          const o = record();
          for (const [k, v] of add)
            o[k] = typeof v === 'function' ? (v as (x: Readonly<Vars>) => string)(vars) : v;
          const ts = s.ts ?? nowUs;
          if (ts !== undefined) o[tF] = tsOut(ts, factor);
          const field = fieldOf(s.key);
          const v = own.has(field) ? undefined : sampleValue(s);
          if (v !== undefined) o[field] = v;
          return Buffer.from(encoded(o, hasLiterals(v)));
        },
      };
    }
  }
}
