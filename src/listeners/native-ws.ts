/**
 * The native WebSocket face (EVRYTHNG style): one socket per topic URL,
 *   ws(s)://proxy/<topic path>?access_token=KEY      (or an `Authorization: KEY` header)
 * A message sent on the socket is published on that topic; updates on the topic are pushed as
 * text. The socket is an MQTT client in disguise: an in-memory stream pair carries real MQTT
 * packets (CONNECT with username `authorization`, SUBSCRIBE, PUBLISH) to an ordinary session,
 * so it is translated to and from the north dialect exactly as MQTT clients are. A refused
 * CONNECT or SUBSCRIBE fails the handshake with HTTP 403.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import mqtt, { type Packet } from 'mqtt-packet';
import { WebSocketServer } from 'ws';
import { streamPair } from '../codec/stream-pair.js';
import type { OnStream, UpgradeHook } from './listeners.js';

const HANDSHAKE_TIMEOUT_MS = 10_000;

export { streamPair } from '../codec/stream-pair.js';

function apiKey(req: IncomingMessage, url: URL): string | undefined {
  const header = req.headers.authorization;
  if (header) return header.replace(/^Bearer\s+/i, '').trim() || undefined;
  return url.searchParams.get('access_token') ?? undefined;
}

/** The topic of a native socket: its path, plus the options other than access_token. */
export function topicOf(url: URL): string {
  const params = new URLSearchParams(url.searchParams);
  params.delete('access_token');
  const q = params.toString();
  return decodeURIComponent(url.pathname) + (q ? `?${q}` : '');
}

export function nativeWebSocketHook(
  onStream: OnStream,
  log?: { debug(o: object, m: string): void },
): UpgradeHook {
  const wss = new WebSocketServer({ noServer: true });
  return (req, socket, head, secure) => {
    const url = new URL(req.url ?? '/', 'http://proxy');
    const key = apiKey(req, url);
    const refuse = (status: string) =>
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    if (!key) {
      refuse('403 Forbidden');
      return true;
    }
    const topic = topicOf(url);
    const [inner, outer] = streamPair();
    onStream(inner, {
      listener: secure ? 'native-wss' : 'native-ws',
      remoteAddress: req.socket.remoteAddress,
    });
    const parser = mqtt.parser({ protocolVersion: 4 });
    const send = (p: Packet) => outer.write(mqtt.generate(p, { protocolVersion: 4 }));
    let phase: 'connack' | 'suback' | 'open' | 'closed' = 'connack';
    let ws: import('ws').WebSocket | undefined;
    const timer = setTimeout(() => fail('504 Gateway Timeout'), HANDSHAKE_TIMEOUT_MS);
    const fail = (status: string) => {
      if (phase === 'closed') return;
      phase = 'closed';
      clearTimeout(timer);
      outer.destroy();
      if (ws) ws.close(1011);
      else refuse(status);
    };
    parser.on('error', () => fail('502 Bad Gateway'));
    parser.on('packet', (p: Packet) => {
      if (phase === 'connack' && p.cmd === 'connack') {
        if ((p.returnCode ?? 0) !== 0) return fail('403 Forbidden');
        phase = 'suback';
        send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 1 }] });
      } else if (phase === 'suback' && p.cmd === 'suback') {
        if ((p.granted as number[]).some((g) => g >= 0x80)) return fail('403 Forbidden');
        clearTimeout(timer);
        wss.handleUpgrade(req, socket, head, (client) => {
          ws = client;
          phase = 'open';
          client.on('message', (data: Buffer) => {
            send({ cmd: 'publish', topic, payload: data, qos: 0, retain: false, dup: false });
          });
          client.on('close', () => {
            if (phase === 'closed') return;
            phase = 'closed';
            send({ cmd: 'disconnect' });
            outer.end();
          });
          client.on('error', () => client.terminate());
        });
      } else if (p.cmd === 'publish') {
        if (p.qos === 1) send({ cmd: 'puback', messageId: p.messageId, reasonCode: 0 });
        if (phase === 'open') ws?.send(p.payload.toString());
      }
      return undefined;
    });
    outer.on('data', (chunk: Buffer) => parser.parse(chunk));
    outer.on('end', () => fail('502 Bad Gateway'));
    outer.on('error', () => fail('502 Bad Gateway'));
    send({
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: 4,
      clientId: `native-ws-${randomBytes(6).toString('hex')}`,
      clean: true,
      keepalive: 0,
      username: 'authorization',
      password: Buffer.from(key),
    });
    log?.debug({ secure }, 'native WebSocket handshake');
    return true;
  };
}
