/**
 * JSON numbers kept exactly as written. `JSON.parse` then `JSON.stringify` changes some
 * numbers: 12345678901234567890 comes back as 12345678901234567000, 23.10 as 23.1, 1E2 as
 * 100, -0 as 0. Node 20 has neither `JSON.rawJSON` nor the reviver's `context.source`, so a
 * payload's bytes are first scanned for such numbers (`changesNumbers`: no allocation for
 * numbers that cannot change); only a payload that has one is read by the small parser here,
 * which keeps each such number as a `JsonNumber` (its literal) and marks every array and
 * object holding one. `jsonText` writes the literal back; an unmarked value is handed to
 * JSON.stringify as before. A number that comes back unchanged stays a plain number.
 */

/** A JSON number that JSON.stringify(JSON.parse(literal)) would change, kept as written. */
export class JsonNumber {
  constructor(readonly literal: string) {}
  /** The number, for arithmetic (a time field) and comparisons. */
  valueOf(): number {
    return Number(this.literal);
  }
  /** What a JSON.stringify that knows nothing of literals writes: the number, as before. */
  toJSON(): number {
    return Number(this.literal);
  }
  toString(): string {
    return this.literal;
  }
}

/** Marks an array or object that holds a JsonNumber, at any depth (not enumerable: not seen by JSON or Object.keys). */
const LITERALS: unique symbol = Symbol('json literals');

export function markLiterals(o: object): void {
  if (!(LITERALS in o)) Object.defineProperty(o, LITERALS, { value: true });
}

/** True when `v` is a JsonNumber or holds one (its JSON text needs `jsonText`). */
export function hasLiterals(v: unknown): boolean {
  return typeof v === 'object' && v !== null && (v instanceof JsonNumber || LITERALS in v);
}

/** A JSON object (not an array, not null, not a kept number, which is an object too). */
export function isJsonObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof JsonNumber);
}

/** The number, when `v` is one (a JsonNumber too); else undefined. */
export function numberOf(v: unknown): number | undefined {
  if (typeof v === 'number') return v;
  return v instanceof JsonNumber ? Number(v.literal) : undefined;
}

/** JSON.stringify(v), with every JsonNumber written as its literal. */
export function jsonText(v: unknown): string | undefined {
  if (typeof v !== 'object' || v === null) return JSON.stringify(v);
  if (v instanceof JsonNumber) return v.literal;
  if (!(LITERALS in v)) return JSON.stringify(v);
  if (Array.isArray(v)) {
    let out = '[';
    for (let i = 0; i < v.length; i++) out += `${i > 0 ? ',' : ''}${jsonText(v[i]) ?? 'null'}`;
    return `${out}]`;
  }
  const o = v as Record<string, unknown>;
  let out = '';
  for (const k of Object.keys(o)) {
    const t = jsonText(o[k]);
    if (t !== undefined) out += `${out ? ',' : ''}${JSON.stringify(k)}:${t}`;
  }
  return `{${out}}`;
}

/** JSON text of an object built by an encoder: JSON.stringify(o) unless `literals` (it holds a JsonNumber). */
export function encoded(o: object, literals: boolean): string {
  if (!literals) return JSON.stringify(o);
  markLiterals(o);
  return jsonText(o) as string;
}

/** True when the number literal `tok` comes back from JSON.parse → JSON.stringify as it is. */
function sameNumber(tok: string): boolean {
  return String(Number(tok)) === tok;
}

/**
 * True when JSON text `b` (UTF-8 bytes) holds a number (outside strings) that JSON.stringify(JSON.parse)
 * would write differently. A number of at most 15 digits without exponent, leading or
 * trailing fraction zero or "-0" comes back as written (a double keeps 15 significant digits
 * and JS writes it in plain notation from 1e-6 to 1e21), and so does an integer of 16 digits
 * below 9e15 (under 2^53: a time in µs): those are passed over without allocating; any other
 * is checked exactly.
 */
export function changesNumbers(b: Buffer): boolean {
  const n = b.length;
  let i = 0;
  while (i < n) {
    const c = b[i] as number;
    if (c === 34) {
      for (i++; i < n; i++) {
        const d = b[i] as number;
        if (d === 92) i++;
        else if (d === 34) break;
      }
      i++;
      continue;
    }
    if (c !== 45 && (c < 48 || c > 57)) {
      i++;
      continue;
    }
    const start = i;
    let j = c === 45 ? i + 1 : i;
    const intStart = j;
    while (j < n && isDigit(b[j] as number)) j++;
    let digits = j - intStart;
    const first = digits > 0 ? (b[intStart] as number) : 0;
    const zeroInt = digits === 1 && first === 48;
    // "-0", "-0.5": checked exactly; an empty or leading-zero integer part is not JSON.
    let plain = digits > 0 && (zeroInt ? c !== 45 : first !== 48);
    let integer = true;
    let d = j < n ? (b[j] as number) : 0;
    if (d === 46) {
      integer = false;
      const f = ++j;
      while (j < n && isDigit(b[j] as number)) j++;
      digits += j - f;
      if (j === f || b[j - 1] === 48 || (zeroInt && b[f] === 48)) plain = false;
      d = j < n ? (b[j] as number) : 0;
    }
    if (d === 101 || d === 69) {
      plain = false;
      j++;
      const s = j < n ? (b[j] as number) : 0;
      if (s === 43 || s === 45) j++;
      while (j < n && isDigit(b[j] as number)) j++;
    }
    const kept = plain && (digits <= 15 || (digits === 16 && integer && first <= 56));
    if (!kept && !sameNumber(b.toString('latin1', start, j))) return true;
    i = j;
  }
  return false;
}

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

/**
 * JSON.parse of `payload` (UTF-8; `text` when the caller has it already), numbers that would
 * change kept as JsonNumber. Throws a SyntaxError where JSON.parse does. The common case (no
 * such number) is JSON.parse itself after the scan.
 */
export function parseJsonExact(payload: Buffer, text = payload.toString('utf8')): unknown {
  if (!changesNumbers(payload)) return JSON.parse(text);
  try {
    return parseKeepingLiterals(text);
  } catch (e) {
    // Nested deeper than this parser's stack allows: JSON.parse's numbers, as before.
    if (e instanceof RangeError) return JSON.parse(text);
    throw e;
  }
}

/** The parser below on its own, whatever the numbers (parseJsonExact skips it when none would change). */
export function parseKeepingLiterals(text: string): unknown {
  return new Parser(text).document();
}

/** A JSON parser as strict as JSON.parse (RFC 8259), keeping changing numbers as literals. */
class Parser {
  private i = 0;
  /** JsonNumbers made so far: a container that saw this grow holds one. */
  private literals = 0;
  constructor(private readonly t: string) {}

  document(): unknown {
    const v = this.value();
    this.space();
    if (this.i < this.t.length) this.fail();
    return v;
  }

  private fail(): never {
    throw new SyntaxError(`Unexpected token in JSON at position ${this.i}`);
  }

  private space(): void {
    const t = this.t;
    for (;;) {
      const c = t.charCodeAt(this.i);
      if (c === 32 || c === 10 || c === 13 || c === 9) this.i++;
      else return;
    }
  }

  private value(): unknown {
    this.space();
    const t = this.t;
    const c = t.charCodeAt(this.i);
    if (c === 34) return this.string();
    if (c === 123) return this.object();
    if (c === 91) return this.array();
    if (c === 45 || isDigit(c)) return this.number();
    if (t.startsWith('true', this.i)) return this.word(4, true);
    if (t.startsWith('false', this.i)) return this.word(5, false);
    if (t.startsWith('null', this.i)) return this.word(4, null);
    return this.fail();
  }

  private word<T>(len: number, v: T): T {
    this.i += len;
    return v;
  }

  private number(): number | JsonNumber {
    const t = this.t;
    const start = this.i;
    let j = start;
    if (t.charCodeAt(j) === 45) j++;
    if (t.charCodeAt(j) === 48) j++;
    else {
      if (!isDigit(t.charCodeAt(j))) this.at(j);
      while (isDigit(t.charCodeAt(j))) j++;
    }
    if (t.charCodeAt(j) === 46) {
      j++;
      if (!isDigit(t.charCodeAt(j))) this.at(j);
      while (isDigit(t.charCodeAt(j))) j++;
    }
    const e = t.charCodeAt(j);
    if (e === 101 || e === 69) {
      j++;
      const s = t.charCodeAt(j);
      if (s === 43 || s === 45) j++;
      if (!isDigit(t.charCodeAt(j))) this.at(j);
      while (isDigit(t.charCodeAt(j))) j++;
    }
    this.i = j;
    const tok = t.slice(start, j);
    if (sameNumber(tok)) return Number(tok);
    this.literals++;
    return new JsonNumber(tok);
  }

  private at(j: number): never {
    this.i = j;
    return this.fail();
  }

  private string(): string {
    const t = this.t;
    const start = this.i;
    let j = start + 1;
    let escaped = false;
    for (;;) {
      const c = t.charCodeAt(j);
      if (Number.isNaN(c) || c < 0x20) this.at(j);
      if (c === 34) break;
      if (c === 92) {
        escaped = true;
        j++;
      }
      j++;
    }
    this.i = j + 1;
    // Escapes (and their errors) are JSON.parse's own.
    return escaped ? (JSON.parse(t.slice(start, j + 1)) as string) : t.slice(start + 1, j);
  }

  private array(): unknown[] {
    const before = this.literals;
    const out: unknown[] = [];
    this.i++;
    this.space();
    if (this.t.charCodeAt(this.i) === 93) this.i++;
    else
      for (;;) {
        out.push(this.value());
        this.space();
        const c = this.t.charCodeAt(this.i++);
        if (c === 93) break;
        if (c !== 44) this.at(this.i - 1);
      }
    if (this.literals !== before) markLiterals(out);
    return out;
  }

  private object(): Record<string, unknown> {
    const before = this.literals;
    const out: Record<string, unknown> = {};
    this.i++;
    this.space();
    if (this.t.charCodeAt(this.i) === 125) this.i++;
    else
      for (;;) {
        this.space();
        if (this.t.charCodeAt(this.i) !== 34) this.fail();
        const k = this.string();
        this.space();
        if (this.t.charCodeAt(this.i) !== 58) this.fail();
        this.i++;
        const v = this.value();
        // A key like any other (JSON.parse defines it): `__proto__` does not set the prototype.
        if (k === '__proto__')
          Object.defineProperty(out, k, { value: v, writable: true, enumerable: true, configurable: true });
        else out[k] = v;
        this.space();
        const c = this.t.charCodeAt(this.i++);
        if (c === 125) break;
        if (c !== 44) this.at(this.i - 1);
      }
    if (this.literals !== before) markLiterals(out);
    return out;
  }
}
