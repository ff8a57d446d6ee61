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
import type { Packet } from 'mqtt-packet';
import { type WebSocket, WebSocketServer } from 'ws';
import { InnerClient } from '../codec/inner-client.js';
import { streamPair } from '../codec/stream-pair.js';
import type { OnStream, UpgradeHook } from './listeners.js';

const HANDSHAKE_TIMEOUT_MS = 10_000;

export { streamPair } from '../codec/stream-pair.js';

function apiKey(req: IncomingMessage, url: URL): string | undefined {
  const header = req.headers.authorization;
  if (header) return header.replace(/^Bearer\s+/i, '').trim() || undefined;
  return url.searchParams.get('access_token') ?? undefined;
}

/**
 * The topic of a native socket: its path, plus the options other than access_token. The path
 * is the topic as MQTT clients write it (EVRYTHNG: REST paths, non-URL-safe characters
 * percent-escaped), each level escaped as the proxy escapes the topics it builds, so that the
 * socket's subscription matches them (`room%20temp`, not `room temp`) and an escaped `/`, `+`
 * or `#` stays a character of its level. Throws on a malformed escape.
 */
export function topicOf(url: URL): string {
  const params = new URLSearchParams(url.searchParams);
  params.delete('access_token');
  const q = params.toString();
  const path = url.pathname
    .split('/')
    .map((level) => encodeURIComponent(decodeURIComponent(level)))
    .join('/');
  return path + (q ? `?${q}` : '');
}

export function nativeWebSocketHook(
  onStream: OnStream,
  log: { debug(o: object, m: string): void } | undefined,
  /** limits.maxPacketBytes: a message becomes one PUBLISH, whose payload must fit in it. */
  maxPacketBytes: number,
): UpgradeHook {
  const wss = new WebSocketServer({ noServer: true, maxPayload: maxPacketBytes });
  return (req, socket, head, secure) => {
    const url = new URL(req.url ?? '/', 'http://proxy');
    const key = apiKey(req, url);
    const refuse = (status: string) =>
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    if (!key) {
      refuse('403 Forbidden');
      return true;
    }
    let topic: string;
    try {
      topic = topicOf(url);
    } catch {
      // A malformed percent-encoding in the path.
      refuse('400 Bad Request');
      return true;
    }
    const [inner, outer] = streamPair();
    onStream(inner, {
      listener: secure ? 'native-wss' : 'native-ws',
      remoteAddress: req.socket.remoteAddress,
      remotePort: req.socket.remotePort,
    });
    let phase: 'connack' | 'suback' | 'open' | 'closed' = 'connack';
    let ws: WebSocket | undefined;
    const timer = setTimeout(() => fail('504 Gateway Timeout'), HANDSHAKE_TIMEOUT_MS);
    const fail = (status: string) => {
      if (phase === 'closed') return;
      phase = 'closed';
      clearTimeout(timer);
      client.close();
      if (ws) ws.close(1011);
      else refuse(status);
    };
    const client = new InnerClient(
      outer,
      {
        cmd: 'connect',
        clientId: `native-ws-${randomBytes(6).toString('hex')}`,
        username: 'authorization',
        password: Buffer.from(key),
      },
      {
        onConnack: (c) => {
          if ((c.returnCode ?? 0) !== 0) {
            fail('403 Forbidden');
            return;
          }
          phase = 'suback';
          client.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 1 }] });
        },
        onPacket: (p: Packet) => {
          if (phase === 'suback' && p.cmd === 'suback') {
            if ((p.granted as number[]).some((g) => g >= 0x80)) {
              fail('403 Forbidden');
              return;
            }
            // ws answers a bad request (key, version, method) or a socket already gone by
            // closing it without calling back: the socket's close or the timer ends the session.
            wss.handleUpgrade(req, socket, head, (open) => {
              clearTimeout(timer);
              if (phase === 'closed') {
                open.terminate();
                return;
              }
              ws = open;
              phase = 'open';
              open.on('message', (data: Buffer) => {
                // Not read further while the session is not reading (its north is blocked).
                if (!client.send({ cmd: 'publish', topic, payload: data, qos: 0, retain: false, dup: false }))
                  open.pause();
              });
              open.on('close', () => {
                if (phase === 'closed') return;
                phase = 'closed';
                client.disconnect();
              });
              open.on('error', () => open.terminate());
            });
          } else if (p.cmd === 'publish') {
            if (p.qos === 1) client.send({ cmd: 'puback', messageId: p.messageId, reasonCode: 0 });
            if (phase === 'open') ws?.send(p.payload.toString());
          }
        },
        onClose: () => fail('502 Bad Gateway'),
        onDrain: () => ws?.resume(),
      },
    );
    socket.once('close', () => {
      if (phase !== 'open') fail('502 Bad Gateway');
    });
    log?.debug({ secure }, 'native WebSocket handshake');
    return true;
  };
}
