/**
 * Baseline 3: the minimal reference proxy. It parses every packet in both directions with
 * mqtt-packet, rewrites the PUBLISH topic with a string replace and re-generates the
 * packet: the floor of what a Node MQTT proxy must cost. One north socket per device.
 * Usage (forked by bench/run.ts): reference-proxy-child.ts NORTH_PORT
 */
import net from 'node:net';
import mqtt, { type Packet } from 'mqtt-packet';
import { serve } from './lib/proc.js';

const northPort = Number(process.argv[2]);

function relay(from: net.Socket, to: net.Socket, rewrite: boolean): void {
  const parser = mqtt.parser({ protocolVersion: 4 });
  let paused = false;
  parser.on('packet', (p: Packet) => {
    if (rewrite && p.cmd === 'publish') p.topic = p.topic.replace('$resource/', '/thngs/T1/properties/');
    if (!to.write(mqtt.generate(p)) && !paused) {
      paused = true;
      from.pause();
      to.once('drain', () => {
        paused = false;
        from.resume();
      });
    }
  });
  parser.on('error', () => from.destroy());
  from.on('data', (chunk: Buffer) => parser.parse(chunk));
}

const server = net.createServer((south) => {
  const north = net.connect(northPort, '127.0.0.1');
  south.setNoDelay(true);
  north.setNoDelay(true);
  relay(south, north, true);
  relay(north, south, false);
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
