/**
 * Whole frames parsed by a few shared mqtt-packet parsers instead of one per connection.
 *
 * The framer hands mqtt-packet exactly one complete packet at a time, so between frames a
 * parser holds no bytes: all that is a connection's own is the parser's `settings` (the
 * protocol version, and after a CONNECT the CONNECT itself), which the connection keeps and
 * lends with each frame. A parser is borrowed for one frame and given back; a frame parsed
 * while another is being parsed (a packet handler that feeds an in-process connection)
 * borrows another. A parser that did not end cleanly (a parse error, a handler that threw,
 * bytes left over) is dropped. Nothing per connection: two fewer parsers, buffers and
 * listener pairs made at every connect and kept by every idle device.
 */
import type { Packet, Parser } from 'mqtt-packet';
import { createParser } from './lean-parser.js';

/** What a frame is parsed for: a connection's parser settings and its handlers. */
export interface FrameSink {
  /** mqtt-packet's parser `settings`: `{ protocolVersion }`, replaced by the CONNECT once parsed. */
  parserSettings: object;
  onParsed(packet: Packet): void;
  onParseError(err: Error): void;
}

interface Pooled extends Parser {
  sink: FrameSink | undefined;
  settings: object;
  _stateCounter: number;
}

/** Parsers not in use; more than a few are never needed (one, plus one per nested parse). */
const idle: Pooled[] = [];
const MAX_IDLE = 4;
const NO_SETTINGS = Object.freeze({});

/** Settings objects shared by every connection: by protocol version, and bridge mode. */
const shared = new Map<string, object>();

/**
 * mqtt-packet's parser settings for a protocol version (none: any, read from the CONNECT).
 * All the parser reads of them are `protocolVersion` and `bridgeMode`; one frozen object per
 * pair serves every connection.
 */
export function parserSettingsFor(protocolVersion?: number, bridgeMode = false): object {
  if (protocolVersion === undefined) return NO_SETTINGS;
  const key = `${protocolVersion}:${bridgeMode}`;
  let s = shared.get(key);
  if (!s) {
    s = Object.freeze(bridgeMode ? { protocolVersion, bridgeMode } : { protocolVersion });
    shared.set(key, s);
  }
  return s;
}

/**
 * After a CONNECT, mqtt-packet keeps the whole CONNECT as its settings (client id, password,
 * will): a connection keeps only the shared settings of its version instead.
 */
function settingsAfter(settings: object): object {
  const c = settings as { cmd?: unknown; protocolVersion?: number; bridgeMode?: boolean };
  return c.cmd === 'connect' ? parserSettingsFor(c.protocolVersion, c.bridgeMode === true) : settings;
}

function make(): Pooled {
  const p = createParser() as Pooled;
  p.sink = undefined;
  p.on('packet', (packet: Packet) => p.sink?.onParsed(packet));
  p.on('error', (err: Error) => p.sink?.onParseError(err));
  return p;
}

/** Parses one whole frame for `sink` (its handlers are called before this returns). */
export function parseFrame(frame: Buffer, sink: FrameSink): void {
  const p = idle.pop() ?? make();
  p.sink = sink;
  p.settings = sink.parserSettings;
  let clean = false;
  try {
    const left = p.parse(frame);
    clean = left === 0 && p._stateCounter === 0;
  } finally {
    sink.parserSettings = settingsAfter(p.settings);
    p.sink = undefined;
    p.settings = NO_SETTINGS;
    // An error, a handler that threw or bytes left over: that parser is not used again
    // (mqtt-packet's own reset after an error leaves its read offset behind).
    if (clean && idle.length < MAX_IDLE) idle.push(p);
  }
}
