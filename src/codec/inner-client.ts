/**
 * An MQTT client that lives inside the proxy: it speaks real MQTT packets over an in-memory
 * stream pair to an ordinary Session, so a front that is not a plain MQTT client (a native
 * WebSocket, a gateway's attached device) is translated exactly as MQTT clients are.
 */
import type { Duplex } from 'node:stream';
import type { IConnackPacket, IConnectPacket, Packet } from 'mqtt-packet';
import { createParser } from './lean-parser.js';
import mqtt from './quiet-mqtt-packet.js';

export interface InnerClientEvents {
  onConnack(packet: IConnackPacket): void;
  /** Any packet after the CONNACK. */
  onPacket(packet: Packet): void;
  /** The session side closed (or sent garbage); called once. */
  onClose(): void;
  /** The session reads again after `send` returned false. */
  onDrain?(): void;
}

export class InnerClient {
  private readonly parser = createParser({ protocolVersion: 4 });
  private connected = false;
  private closed = false;
  private nextId = 1;

  constructor(
    private readonly stream: Duplex,
    connect: IConnectPacket,
    private readonly events: InnerClientEvents,
  ) {
    this.parser.on('packet', (p: Packet) => {
      if (this.closed) return;
      if (!this.connected && p.cmd === 'connack') {
        this.connected = true;
        events.onConnack(p);
      } else {
        events.onPacket(p);
      }
    });
    this.parser.on('error', () => this.close());
    stream.on('data', (chunk: Buffer) => this.parser.parse(chunk));
    stream.on('end', () => this.close());
    stream.on('close', () => this.close());
    stream.on('error', () => this.close());
    stream.on('drain', () => {
      if (!this.closed) events.onDrain?.();
    });
    this.send({ protocolId: 'MQTT', protocolVersion: 4, keepalive: 0, clean: true, ...connect });
  }

  /** A packet identifier of this client's own (1..65535, wrapping). */
  allocId(): number {
    const id = this.nextId;
    this.nextId = id === 65535 ? 1 : id + 1;
    return id;
  }

  /** False when the session is not reading (its north is blocked): wait for onDrain. */
  send(packet: Packet): boolean {
    if (this.closed) return true;
    return this.stream.write(mqtt.generate(packet, { protocolVersion: 4 }));
  }

  /**
   * Stops reading what the session sends (the front cannot pass it on yet): the session's
   * writes then wait, and it stops reading its north. resume() reads again.
   */
  pause(): void {
    this.stream.pause();
  }

  resume(): void {
    if (!this.closed) this.stream.resume();
  }

  /** DISCONNECT (normal end), then close. Idempotent. */
  disconnect(): void {
    if (this.closed) return;
    this.send({ cmd: 'disconnect' });
    this.stream.end();
    this.close();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.stream.destroy();
    this.events.onClose();
  }

  get isClosed(): boolean {
    return this.closed;
  }
}
