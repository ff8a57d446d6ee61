/**
 * The front of a south client on a route with south gateways: a ClearBlade gateway and a
 * ClearBlade device connecting directly look alike until the client's record is found. The
 * CONNECT is read ahead (bytes kept, nothing parsed twice by a channel), the route decides
 * on it once, and the bytes go back to the stream for the front that serves the client:
 *
 *   CONNECT ─▶ route.openSession ─┬─ a gateway's own (or refused) ─▶ GatewayFront (that decision)
 *                                 └─ a device connecting directly ─▶ Session (as on any route)
 *
 * A client that sends anything else first, an oversize or malformed CONNECT, goes to the
 * GatewayFront, whose channel refuses it as before. Bounded by the connect timeout.
 */
import type { Duplex } from 'node:stream';
import type { IConnectPacket, Packet } from 'mqtt-packet';
import { readVarint } from '../codec/bytes.js';
import { createParser } from '../codec/lean-parser.js';
import type { ConnectDecision, SouthGatewaySpec } from '../core/contract.js';
import type { SessionContext } from './context.js';
import { GatewayFront } from './gateway-front.js';
import { Session, type SouthInfo } from './session.js';

const CONNECT = 1;

/** The remaining length of the frame at the start of `buf` and its header size; -1 while incomplete, -2 when malformed. */
function frameLength(buf: Buffer): { remaining: number; header: number } | -1 | -2 {
  const v = readVarint(buf, 1, buf.length);
  if (v) return { remaining: v[0], header: v[1] };
  // Four continuation bytes read: malformed; fewer: the rest has not arrived.
  return buf.length >= 5 ? -2 : -1;
}

export function acceptGatewayRouteClient(
  stream: Duplex,
  info: SouthInfo,
  ctx: SessionContext,
  spec: SouthGatewaySpec,
): void {
  const chunks: Buffer[] = [];
  let bytes = 0;
  let settled = false;
  const stop = (): Buffer => {
    settled = true;
    clearTimeout(timer);
    stream.pause();
    stream.off('data', onData);
    stream.off('error', onGone);
    stream.off('close', onGone);
    stream.off('end', onGone);
    return Buffer.concat(chunks, bytes);
  };
  /** The bytes back to the stream, then the front that serves the client reads them. */
  const handOver = (front: () => void) => {
    const buf = stop();
    if (stream.destroyed) return;
    if (buf.length) stream.unshift(buf);
    front();
    stream.resume();
  };
  const toGateway = (pre?: { connect: IConnectPacket; decision: ConnectDecision }) =>
    handOver(() => new GatewayFront(stream, info, ctx, spec, pre));
  const onGone = () => {
    if (settled) return;
    stop();
    stream.destroy();
  };
  const timer = setTimeout(onGone, ctx.limits.connectTimeoutMs);
  timer.unref();

  const decide = async (frame: Buffer) => {
    let connect: IConnectPacket | undefined;
    const parser = createParser({});
    parser.on('packet', (p: Packet) => {
      if (p.cmd === 'connect') connect = p;
    });
    parser.on('error', () => {});
    parser.parse(frame);
    if (!connect || spec.gatewayId(connect.clientId) === undefined) {
      toGateway();
      return;
    }
    let decision: ConnectDecision;
    try {
      decision = await ctx.route().openSession({
        connect,
        listener: info.listener,
        peerCommonName: info.peerCommonName,
        remoteAddress: info.remoteAddress,
      });
    } catch {
      toGateway();
      return;
    }
    if (settled) {
      if (decision.accept) decision.mapper.close();
      return;
    }
    if (!decision.accept || decision.southGateway) {
      toGateway({ connect, decision });
      return;
    }
    // A device connecting directly: a plain Session decides again on the same CONNECT.
    decision.mapper.close();
    handOver(() => new Session(stream, info, ctx));
  };

  let deciding = false;
  function onData(chunk: Buffer): void {
    if (settled) return;
    chunks.push(chunk);
    bytes += chunk.length;
    // Bytes that still come while the route decides are kept for the front, not read again.
    if (deciding) return;
    const head = chunks.length === 1 ? chunk : Buffer.concat(chunks, bytes);
    if ((head[0] as number) >> 4 !== CONNECT) {
      toGateway();
      return;
    }
    const length = frameLength(head);
    if (length === -1) return;
    if (length === -2 || length.remaining > ctx.limits.maxPacketBytes) {
      toGateway();
      return;
    }
    const size = length.header + length.remaining;
    if (bytes < size) return;
    // Read no further until decided: later bytes stay in the stream.
    stream.pause();
    deciding = true;
    decide(head.subarray(0, size)).catch(() => {
      // Ours, not the client's: only this connection closes.
      if (!settled) stop();
      stream.destroy();
    });
  }
  stream.on('data', onData);
  stream.on('error', onGone);
  stream.on('close', onGone);
  stream.on('end', onGone);
}
