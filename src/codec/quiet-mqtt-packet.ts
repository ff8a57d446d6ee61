/**
 * mqtt-packet for the proxy's own parsers and writers, with its per-packet logging made free.
 *
 * mqtt-packet calls npm `debug` several times per packet (every parser state, every write);
 * disabled, each call still runs debug's `enabled` check, 3–5% of the proxy's CPU per
 * message. Here a copy of mqtt-packet of its own is evaluated with a `debug` that hands out a
 * no-op for every namespace DEBUG leaves disabled (DEBUG is read once at start, as debug
 * itself does), so DEBUG=mqtt-packet:* still shows its logs. The substitute exists only
 * while that copy loads: any other user of mqtt-packet or debug (MQTT.js for north
 * activation, tests) keeps the shared modules, whichever loaded first.
 *
 * Why not a plain `import`: CommonJS modules imported from ES modules run before any ES
 * module body, so nothing could be put in place first. Import the package itself only for
 * types; values come from here (`test/unit/quiet-mqtt-packet.test.ts` loads the channel
 * and checks that its logging is quiet).
 */
import { createRequire } from 'node:module';
import { dirname, sep } from 'node:path';
import type * as MqttPacket from 'mqtt-packet';

type Debug = ((namespace: string) => unknown) & { enabled(namespace: string): boolean };

const require = createRequire(import.meta.url);

function noop(): void {}

function load(): typeof MqttPacket {
  const entry = require.resolve('mqtt-packet');
  const dir = dirname(entry) + sep;
  let debugPath: string;
  try {
    debugPath = require.resolve('debug', { paths: [dir] });
  } catch {
    return require(entry) as typeof MqttPacket;
  }
  const real = require(debugPath) as Debug;
  const debugModule = require.cache[debugPath];
  if (!debugModule || typeof real !== 'function' || typeof real.enabled !== 'function')
    return require(entry) as typeof MqttPacket;
  // mqtt-packet's own files (not its dependencies): set aside those already loaded, so that
  // the copy below is evaluated afresh; they are put back afterwards.
  const own = (k: string): boolean => k.startsWith(dir) && !k.slice(dir.length).includes('node_modules');
  const saved = Object.keys(require.cache)
    .filter(own)
    .map((k) => [k, require.cache[k]] as const);
  for (const [k] of saved) delete require.cache[k];
  debugModule.exports = Object.assign(
    (namespace: string) => (real.enabled(namespace) ? real(namespace) : noop),
    real,
  );
  try {
    return require(entry) as typeof MqttPacket;
  } finally {
    debugModule.exports = real;
    for (const k of Object.keys(require.cache)) if (own(k)) delete require.cache[k];
    for (const [k, m] of saved) require.cache[k] = m;
  }
}

const mqtt: typeof MqttPacket = load();
export default mqtt;
