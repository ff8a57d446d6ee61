/**
 * Whole frames parsed by a few shared mqtt-packet parsers instead of one per connection.
 *
 * The framer hands mqtt-packet exactly one complete packet at a time, so between frames a
 * parser holds no bytes: all that is a connection's own is the parser's `settings` (its
 * protocol version, a shared object, see `versionSettings`), which the connection keeps and
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
  /** mqtt-packet's parser `settings`: none until a CONNECT, or a shared `{ protocolVersion }`. */
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

/** What mqtt-packet reads of its settings (parser and generate options alike). */
export interface VersionSettings {
  readonly protocolVersion: number;
  readonly bridgeMode?: boolean;
}

/** Settings objects shared by every connection, by protocol version and bridge mode. */
const shared = new Map<number, VersionSettings>();

/**
 * One frozen settings object per protocol version (and bridge mode), shared by every
 * connection: mqtt-packet's parser reads `protocolVersion` and `bridgeMode` of its settings,
 * its generate reads `protocolVersion` of its options.
 */
export function versionSettings(protocolVersion: number, bridgeMode = false): VersionSettings {
  const key = protocolVersion * 2 + (bridgeMode ? 1 : 0);
  let s = shared.get(key);
  if (!s) {
    s = Object.freeze(bridgeMode ? { protocolVersion, bridgeMode } : { protocolVersion });
    shared.set(key, s);
  }
  return s;
}

/** mqtt-packet's parser settings for a protocol version (none: any, read from the CONNECT). */
export function parserSettingsFor(protocolVersion?: number): object {
  return protocolVersion === undefined ? NO_SETTINGS : versionSettings(protocolVersion);
}

/**
 * After a CONNECT, mqtt-packet keeps the whole CONNECT as its settings (client id, password,
 * will): a connection keeps only the shared settings of its version instead.
 */
function settingsAfter(settings: object): object {
  const c = settings as { cmd?: unknown; protocolVersion?: number; bridgeMode?: boolean };
  return c.cmd === 'connect' && c.protocolVersion !== undefined
    ? versionSettings(c.protocolVersion, c.bridgeMode === true)
    : settings;
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
