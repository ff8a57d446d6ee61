/**
 * mqtt-packet parsers whose byte buffer is a `ByteList` (`byte-list.ts`).
 *
 * mqtt-packet gives every parser a `bl()` as its buffer: a `BufferListStream`, i.e. a whole
 * readable-stream Duplex (its states, buffers and listeners) of which the parser only uses
 * the list methods (append, consume, length, readUInt8/16/32BE, slice, toString), and those
 * make a new Buffer view at every read. A `ByteList` has the same methods with the same
 * results, reads its bytes in place, and costs nothing to make.
 *
 * The parser's class (from the proxy's own mqtt-packet, `quiet-mqtt-packet.ts`) is extended
 * once, here, with a `_resetState` that does what mqtt-packet's does with a `ByteList`;
 * nothing global is changed. At load a parser of each kind is made and compared (same own
 * fields, same packet fields, a buffer with the methods the parser calls): if mqtt-packet
 * ever lays its parser out differently, `createParser` falls back to `mqtt.parser`.
 */
import type { Parser } from 'mqtt-packet';
import { ByteList } from './byte-list.js';
import mqtt from './quiet-mqtt-packet.js';

export interface ParserOptions {
  protocolVersion?: number;
}

/** The parser's own state that `_resetState` sets (mqtt-packet 9). */
interface ParserState {
  packet: object;
  error: Error | null;
  _list: object;
  _stateCounter: number;
}

type Starter = Parser & { parser(opts: ParserOptions): Parser };

/** Methods of its buffer that mqtt-packet's parser calls. */
export const LIST_METHODS = [
  'append',
  'consume',
  'readUInt8',
  'readUInt16BE',
  'readUInt32BE',
  'slice',
  'toString',
] as const;

function hasListMethods(list: object): boolean {
  const l = list as Record<string, unknown>;
  return typeof l.length === 'number' && LIST_METHODS.every((m) => typeof l[m] === 'function');
}

function sameKeys(a: object, b: object): boolean {
  const x = Object.keys(a).sort();
  const y = Object.keys(b).sort();
  return x.length === y.length && x.every((k, i) => k === y[i]);
}

function build(): (() => Starter) | undefined {
  try {
    const probe = mqtt.parser() as Parser & ParserState;
    const Base = probe.constructor as new () => Starter;
    const PacketCtor = probe.packet.constructor as new () => object;
    if (typeof Base !== 'function' || typeof PacketCtor !== 'function') return undefined;
    class LeanParser extends Base {}
    Object.defineProperty(LeanParser.prototype, '_resetState', {
      configurable: true,
      writable: true,
      value: function resetState(this: ParserState): void {
        this.packet = new PacketCtor();
        this.error = null;
        this._list = new ByteList();
        this._stateCounter = 0;
      },
    });
    const lean = new LeanParser().parser({}) as unknown as Parser & ParserState;
    const ok =
      sameKeys(probe, lean) &&
      sameKeys(probe.packet, lean.packet) &&
      hasListMethods(probe._list) &&
      hasListMethods(lean._list);
    return ok ? () => new LeanParser() : undefined;
  } catch {
    return undefined;
  }
}

const make = build();

/** True when parsers are made with a `ByteList` (false: mqtt-packet's own, unchanged). */
export const leanParsers = make !== undefined;

/** An mqtt-packet parser (as `mqtt.parser(opts)`), with a `ByteList` as its buffer. */
export function createParser(opts: ParserOptions = {}): Parser {
  return make ? make().parser(opts) : mqtt.parser(opts);
}
