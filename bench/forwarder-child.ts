/**
 * Baseline 2: a plain TCP forwarder that does not parse MQTT (socket piping). The ceiling
 * for any hop in the middle. Usage (forked by bench/run.ts): forwarder-child.ts NORTH_PORT
 */
import net from 'node:net';
import { serve } from './lib/proc.js';

const northPort = Number(process.argv[2]);
const server = net.createServer((south) => {
  const north = net.connect(northPort, '127.0.0.1');
  south.setNoDelay(true);
  north.setNoDelay(true);
  south.pipe(north).pipe(south);
  const close = (): void => {
    south.destroy();
    north.destroy();
  };
  south.on('error', close).on('close', close);
  north.on('error', close).on('close', close);
});
server.listen(0, '127.0.0.1', () => {
  const addr = server.address();
  process.send?.({ ready: true, port: typeof addr === 'object' && addr ? addr.port : 0 });
});
serve((m) => {
  if (m.op !== 'gc') return {};
  globalThis.gc?.();
  const u = process.memoryUsage();
  return { heapUsed: u.heapUsed, external: u.external, rss: u.rss };
});
