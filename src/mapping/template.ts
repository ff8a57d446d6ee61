/**
 * Topic templates: `/thngs/{thngId}/properties/{key}`, `$resource/{key}`,
 * `/devices/{deviceId}/events/{subfolder...}`. Each level is a literal or one whole capture;
 * a multi-level capture (`{name...}`) may only be the last level. Compiled once into a
 * matcher, a builder and a filter builder that work on pre-split levels.
 */

export type Vars = Record<string, string>;

type Level = { lit: string } | { cap: string; multi: boolean };

export interface Template {
  readonly source: string;
  readonly captures: readonly string[];
  /** The multi-level capture, when there is one. */
  readonly multi: string | undefined;
  /** Literal levels only: no captures at all. */
  readonly literal: boolean;
  /** Captured values are percent-decoded on match (the dialect escapes its topics: EVRYTHNG). */
  readonly percent?: boolean;
  /** The capture's name when the template is one capture alone (`{deviceId}`). */
  readonly lone: string | undefined;
  /** Matches pre-split topic levels; captured values go into `out`. */
  match(levels: readonly string[], out: Vars): boolean;
  /**
   * Builds a topic from identity variables and the message's key and name (given apart so
   * that nothing is copied per message); undefined when a value is missing or could widen the topic.
   */
  build(vars: Readonly<Vars>, key?: string, name?: string): string | undefined;
  /** Builds a subscription filter: captures without a value become `+` (or `#` for a multi-level one). */
  filter(vars: Readonly<Vars>, key?: string, name?: string): string | undefined;
}

export interface TemplateOptions {
  /**
   * Multi-level captures are joined with this separator on match (akenza: `_`); a single-level
   * capture built from a multi-level value gets its levels joined with it (`a/b` → `a_b`).
   */
  join?: string;
  /** A multi-level capture is built by splitting its value on this separator (`a_b` → `a/b`). */
  split?: string;
  /**
   * A multi-level capture is built as one level, its levels joined with `join` (a downlink-only
   * rule: akenza `/down/.../{name...}` matches `a/b` as `a_b` and builds `a_b` from `a/b`).
   */
  flat?: boolean;
  /** Captured values are percent-decoded on match and percent-encoded on build (EVRYTHNG). */
  percent?: boolean;
  /** Aliases of the {key} capture: topic level -> key on match, key -> topic level on build. */
  names?: Readonly<Record<string, string>>;
}

const CAPTURE = /^\{([A-Za-z_][A-Za-z0-9_]*)(\.\.\.)?\}$/;

/** Parses a template; returns the error message when it is malformed. */
export function parseTemplate(source: string, opts: TemplateOptions = {}): Template | string {
  if (source.length === 0) return 'empty topic template';
  if (/[+#\0]/.test(source))
    return 'a topic template may not contain +, # or NUL (write a capture such as {key})';
  const levels: Level[] = [];
  const captures: string[] = [];
  const parts = source.split('/');
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i] ?? '';
    if (part.includes('{') || part.includes('}')) {
      const m = CAPTURE.exec(part);
      if (!m?.[1]) return `malformed capture '${part}': a capture is a whole level, {name} or {name...}`;
      const multi = m[2] !== undefined;
      if (multi && i !== parts.length - 1) return `multi-level capture '${part}' must be the last level`;
      if (captures.includes(m[1])) return `capture {${m[1]}} appears twice`;
      captures.push(m[1]);
      levels.push({ cap: m[1], multi });
    } else levels.push({ lit: part });
  }
  const last = levels[levels.length - 1];
  const multi = last && 'cap' in last && last.multi ? last.cap : undefined;
  return compile(source, levels, captures, multi, opts);
}

/** True when a value may fill one capture level: non-empty, no `/`, `+`, `#` or NUL. */
/** A percent-escaped topic level decoded; undefined when its escapes are malformed. */
export function decodeLevel(level: string): string | undefined {
  if (!level.includes('%')) return level;
  try {
    return decodeURIComponent(level);
  } catch {
    return undefined;
  }
}

export function safeLevel(v: string): boolean {
  if (v.length === 0) return false;
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c === 47 || c === 43 || c === 35 || c === 0) return false;
  }
  return true;
}

/** True when a value may fill a multi-level capture: levels separated by `/`, each safe. */
export function safeLevels(v: string): boolean {
  if (v.length === 0) return false;
  let start = 0;
  for (let i = 0; i <= v.length; i++) {
    const c = i < v.length ? v.charCodeAt(i) : 47;
    if (c === 43 || c === 35 || c === 0) return false;
    if (c === 47) {
      if (i === start) return false;
      start = i + 1;
    }
  }
  return true;
}

function compile(
  source: string,
  levels: Level[],
  captures: string[],
  multi: string | undefined,
  opts: TemplateOptions,
): Template {
  const n = levels.length;
  const join = opts.join;
  const split = opts.split;
  const flat = opts.flat === true && join !== undefined;
  const percent = opts.percent === true;
  const dec = (v: string): string | undefined => (percent ? decodeLevel(v) : v);
  const enc = (v: string): string => (percent ? encodeURIComponent(v) : v);
  const names = opts.names;
  const levelOf = new Map<string, string>();
  if (names) for (const [level, key] of Object.entries(names)) levelOf.set(key, level);
  // The {key} capture read through the aliases (bat -> battery) and written back (battery -> bat).
  const keyIn = (v: string): string => (names && Object.hasOwn(names, v) ? (names[v] as string) : v);
  const keyOut = (v: string): string => levelOf.get(v) ?? v;
  /** The value a capture takes when building: the message's key or name first, else the identity. */
  const captureValue = (
    cap: string,
    vars: Readonly<Vars>,
    key?: string,
    name?: string,
  ): string | undefined =>
    cap === 'key' && key !== undefined
      ? keyOut(key)
      : cap === 'name' && name !== undefined
        ? name
        : vars[cap];
  return {
    source,
    captures,
    multi,
    literal: captures.length === 0,
    percent,
    lone: n === 1 && captures.length === 1 && !multi ? captures[0] : undefined,
    match(parts, out) {
      if (multi ? parts.length < n : parts.length !== n) return false;
      for (let i = 0; i < n; i++) {
        const l = levels[i] as Level;
        const p = parts[i] as string;
        if ('lit' in l) {
          if (l.lit !== p) return false;
        } else if (l.multi) {
          const rest = parts.slice(i);
          for (const r of rest) if (!safeLevel(r)) return false;
          const v = dec(rest.join(join ?? '/'));
          if (v === undefined) return false;
          out[l.cap] = v;
        } else {
          if (!safeLevel(p)) return false;
          const v = dec(p);
          if (v === undefined) return false;
          out[l.cap] = l.cap === 'key' ? keyIn(v) : v;
        }
      }
      return true;
    },
    build(vars, key, name) {
      let t = '';
      for (let i = 0; i < n; i++) {
        const l = levels[i] as Level;
        if (i > 0) t += '/';
        if ('lit' in l) t += l.lit;
        else {
          const v = captureValue(l.cap, vars, key, name);
          if (v === undefined) return undefined;
          if (l.multi && !flat) {
            const w = split !== undefined ? v.split(split).join('/') : v;
            if (!safeLevels(w)) return undefined;
            t += percent ? w.split('/').map(enc).join('/') : w;
          } else {
            const w = join !== undefined ? v.split('/').join(join) : v;
            // A percent-escaped dialect writes a '/' inside one level as %2F (a ClearBlade
            // subfolder a/b as an EVRYTHNG action name); elsewhere it would split the level.
            if (!safeLevel(percent ? w.replaceAll('/', '_') : w)) return undefined;
            t += enc(w);
          }
        }
      }
      return t;
    },
    filter(vars, key, name) {
      let t = '';
      for (let i = 0; i < n; i++) {
        const l = levels[i] as Level;
        if (i > 0) t += '/';
        if ('lit' in l) t += l.lit;
        else {
          const v = captureValue(l.cap, vars, key, name);
          if (v === undefined) t += l.multi ? '#' : '+';
          else if (!safeLevel(v)) return undefined;
          else t += enc(v);
        }
      }
      return t;
    },
  };
}

/**
 * Topic filter matching (levels pre-split). Filters here come from a dialect's allowed list,
 * so `#` and `+` also cover `$` topics (Connector's `#` covers `$resource/...`).
 */
export function filterMatches(filter: readonly string[], topic: readonly string[]): boolean {
  for (let i = 0; i < filter.length; i++) {
    const f = filter[i];
    if (f === '#') return true;
    const t = topic[i];
    if (t === undefined) return false;
    if (f !== '+' && f !== t) return false;
  }
  return filter.length === topic.length;
}

/**
 * Splits a topic into its path levels and its `?a=b&c=d` options. `withOptions` false (a
 * dialect that declares no options): `?` is a character of the topic like any other.
 */
export function splitTopic(
  topic: string,
  withOptions = true,
): { levels: string[]; options: Vars | undefined } {
  const q = withOptions ? topic.indexOf('?') : -1;
  if (q < 0) return { levels: topic.split('/'), options: undefined };
  const options: Vars = {};
  for (const kv of topic.slice(q + 1).split('&')) {
    if (kv.length === 0) continue;
    const eq = kv.indexOf('=');
    options[eq < 0 ? kv : kv.slice(0, eq)] = eq < 0 ? '' : kv.slice(eq + 1);
  }
  return { levels: topic.slice(0, q).split('/'), options };
}
