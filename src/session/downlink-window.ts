/**
 * The in-flight window of QoS 1 downlinks toward one south gateway, all its devices together.
 * Each downlink gets a packet id of the gateway's connection; at most `limit` are sent and not
 * yet acknowledged, the rest wait in arrival order and go out as PUBACKs free room.
 *
 * What waits needs no bound of its own: a device's session has not acknowledged a waiting
 * downlink north, so the north broker's own in-flight window stops sending that device more.
 * MQTT 3.1.1 has no Receive Maximum; this is the same courtesy for a gateway that has to fan
 * every message out to a device of its own.
 */
import type { IPublishPacket } from 'mqtt-packet';
import { IdAllocator } from '../codec/packet-ids.js';

export class DownlinkWindow<D> {
  /** Gateway-side packet id → the device and its session's id of a downlink awaiting PUBACK. */
  private readonly inflight = new Map<number, { device: D; innerId: number }>();
  private readonly ids = new IdAllocator();
  private waiting: Array<{ device: D; packet: IPublishPacket } | undefined> = [];
  private head = 0;
  private full = false;

  constructor(
    private readonly limit: number,
    private readonly write: (packet: IPublishPacket) => void,
    /** The window filled up for the first time on this connection. */
    private readonly onFirstFull: (inflight: number) => void,
  ) {}

  /** A QoS 1 downlink from `device`'s session (its packet id is the session's). */
  offer(device: D, packet: IPublishPacket): void {
    if (this.head < this.waiting.length || this.inflight.size >= this.limit) {
      this.onFull();
      this.waiting.push({ device, packet });
      return;
    }
    this.send(device, packet);
  }

  /** The gateway's PUBACK: the device and its session's id, or undefined for an unknown id. */
  acked(id: number): { device: D; innerId: number } | undefined {
    const entry = this.inflight.get(id);
    if (!entry) return undefined;
    this.inflight.delete(id);
    this.ids.free(id);
    this.pump();
    return entry;
  }

  /** A device detached: its downlinks are forgotten (unacknowledged north, not lost). */
  forget(device: D): void {
    for (const [id, entry] of this.inflight) {
      if (entry.device === device) {
        this.inflight.delete(id);
        this.ids.free(id);
      }
    }
    if (this.head < this.waiting.length) {
      this.waiting = this.waiting.slice(this.head).filter((w) => w?.device !== device);
      this.head = 0;
    }
    this.pump();
  }

  clear(): void {
    this.inflight.clear();
    this.waiting = [];
    this.head = 0;
  }

  private onFull(): void {
    if (this.full) return;
    this.full = true;
    this.onFirstFull(this.inflight.size);
  }

  private send(device: D, packet: IPublishPacket): void {
    const innerId = packet.messageId ?? 0;
    const id = this.ids.alloc();
    packet.messageId = id;
    this.inflight.set(id, { device, innerId });
    this.write(packet);
  }

  /** Sends what waits while there is room, oldest first. */
  private pump(): void {
    while (this.head < this.waiting.length && this.inflight.size < this.limit) {
      const w = this.waiting[this.head]!;
      this.waiting[this.head++] = undefined;
      this.send(w.device, w.packet);
    }
    if (this.head === this.waiting.length) {
      this.waiting = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.waiting.length) {
      this.waiting = this.waiting.slice(this.head);
      this.head = 0;
    }
  }
}
