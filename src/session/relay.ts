/**
 * End-to-end QoS for one direction of one session, written once and used both ways:
 * messages arrive from a source side (the sender) and are relayed, possibly fanned out,
 * to a destination side (the receiver). The source is acknowledged only once every
 * destination copy has been acknowledged; packet identifiers are remapped per side.
 *
 *   QoS 1: src PUBLISH(x) → dst PUBLISH(y1..yn) → dst PUBACK(all) → src PUBACK(x)
 *   QoS 2: src PUBLISH(x) → dst PUBLISH(y..) → dst PUBREC(all) → src PUBREC(x)
 *          → src PUBREL(x) → dst PUBREL(y..) → dst PUBCOMP(all) → src PUBCOMP(x)
 *
 * A message that produces no QoS>0 copy is acknowledged at once (it was consumed). A QoS 2
 * resend (DUP) after PUBREC sends the QoS 2 copies again under their ids and relays the answer.
 *
 * Every acknowledgement carries an explicit reason code (0 by default): mqtt-packet then
 * emits the MQTT 5 short form (2 bytes) when it is 0, which strict clients (paho) require.
 */
import type { IPublishPacket, Packet, QoS } from 'mqtt-packet';
import type { IdSpace } from '../codec/packet-ids.js';
import type { PublishOut } from '../core/contract.js';

export type AckCmd = 'puback' | 'pubrec' | 'pubcomp';
export type AckResult = 'ok' | 'unknown' | 'unexpected';

export interface RelayPeer {
  send(packet: Packet): boolean;
}

export interface RelayHooks {
  onStart(): void;
  /** A message fully acknowledged to its source; `t0` is its arrival time (ms). */
  onSettled(t0: number): void;
}

interface Group {
  srcId: number;
  srcQos: QoS;
  waiting: number;
  phase: 'ack' | 'rel' | 'comp';
  reasonCode: number;
  /** Destination ids that answered PUBREC and now need PUBREL. */
  relIds: number[];
  /** The QoS 2 copies sent (a QoS 2 source only): passed on again when the source resends. */
  sent?: IPublishPacket[];
  /** The source's PUBREL came while a resend's PUBRECs were awaited: released after them. */
  relLater: boolean;
  t0: number;
  /** No source to acknowledge (a message the proxy made itself). */
  local: boolean;
}

export class Relay {
  private readonly bySrc = new Map<number, Group>();
  private readonly byDst = new Map<number, Group>();
  /** The acknowledgement each destination copy is waiting for (PUBACK, PUBREC or PUBCOMP). */
  private readonly expect = new Map<number, AckCmd>();
  /** Copies released by the proxy itself, waiting only for their PUBCOMP. */
  private readonly orphans: Group = this.newGroup(0, 0, true);

  constructor(
    private readonly src: RelayPeer,
    private readonly dst: RelayPeer,
    private readonly ids: IdSpace,
    private readonly hooks: RelayHooks,
    /**
     * False when nothing goes to the destination at QoS 2 (its maximum is lower, or a quirk
     * downgrades): an unknown PUBREL cannot belong to a flow there (see onSourcePubrel).
     */
    private readonly destinationQos2 = true,
  ) {}

  /** Messages not yet acknowledged to their source. */
  get size(): number {
    return this.bySrc.size;
  }

  /** Destination copies not yet acknowledged (includes locally made messages). */
  get pendingDestination(): number {
    return this.byDst.size;
  }

  /**
   * Relays one source message as `outs`. `src` null: the proxy itself made these messages,
   * nothing to acknowledge upstream. Each out's QoS must already be capped by the caller.
   */
  forward(src: { messageId?: number; qos: QoS } | null, outs: PublishOut[]): void {
    const srcId = src?.messageId ?? 0;
    const srcQos = src ? src.qos : 0;
    if (srcQos > 0) {
      const existing = this.bySrc.get(srcId);
      if (existing) {
        if (existing.phase === 'rel') this.resend(existing);
        return;
      }
    }
    let group: Group | undefined;
    for (let i = 0; i < outs.length; i++) {
      const out = outs[i]!;
      const packet: IPublishPacket = {
        cmd: 'publish',
        topic: out.topic,
        payload: out.payload,
        qos: out.qos,
        retain: out.retain,
        // DUP is the sender's: a redelivery stays one (never on QoS 0).
        dup: out.qos > 0 && out.dup === true,
      };
      if (out.properties) packet.properties = out.properties;
      if (out.qos > 0) {
        if (!group) group = this.newGroup(srcId, srcQos, src === null);
        // The first copy keeps the sender's id when it is free on this side: pass-through is
        // then byte-for-byte transparent.
        const id = this.ids.alloc(group.waiting === 0 ? srcId || undefined : undefined);
        packet.messageId = id;
        this.byDst.set(id, group);
        this.expect.set(id, out.qos === 1 ? 'puback' : 'pubrec');
        group.waiting++;
        if (out.qos === 2 && srcQos === 2) {
          if (!group.sent) group.sent = [];
          group.sent.push(packet);
        }
      }
      this.dst.send(packet);
    }
    if (srcQos === 0) return;
    if (!group) {
      this.ackSource(srcId, srcQos, 0);
      if (srcQos === 2) {
        this.bySrc.set(srcId, { ...this.newGroup(srcId, srcQos, false), phase: 'rel' });
        this.hooks.onStart();
      }
      return;
    }
    this.bySrc.set(srcId, group);
    this.hooks.onStart();
  }

  /**
   * PUBACK, PUBREC or PUBCOMP from the destination: 'unknown' for an id not in flight (ignored),
   * 'unexpected' for the wrong kind of acknowledgement (a protocol error: the caller closes).
   */
  onDestinationAck(packet: { cmd: AckCmd; messageId?: number; reasonCode?: number }): AckResult {
    const id = packet.messageId ?? 0;
    const g = this.byDst.get(id);
    if (!g) return 'unknown';
    if (this.expect.get(id) !== packet.cmd) return 'unexpected';
    const rc = packet.reasonCode ?? 0;
    if (g.local) {
      // Nobody upstream will send PUBREL for a message the proxy made: release it here.
      if (packet.cmd === 'pubrec' && rc < 0x80) this.sendPubrel(id);
      else this.release(id);
      return 'ok';
    }
    if (rc > g.reasonCode) g.reasonCode = rc;
    if (packet.cmd === 'pubrec') {
      this.byDst.delete(id);
      // Accepted: the id stays allocated until its PUBCOMP. Refused (MQTT 5): the flow ends.
      if (rc < 0x80) g.relIds.push(id);
      else {
        this.expect.delete(id);
        this.ids.free(id);
      }
    } else {
      this.release(id);
    }
    if (--g.waiting > 0) return 'ok';
    if (g.phase === 'comp') {
      this.src.send({ cmd: 'pubcomp', messageId: g.srcId, reasonCode: 0 });
      this.settle(g);
    } else if (g.srcQos === 1) {
      this.src.send({ cmd: 'puback', messageId: g.srcId, reasonCode: g.reasonCode });
      this.settle(g);
    } else if (g.reasonCode >= 0x80) {
      // A refused PUBREC ends the source's flow too (MQTT 5, 4.3.3): no PUBREL will come, so
      // copies that were accepted are released by the proxy itself.
      for (const rid of g.relIds) {
        this.byDst.set(rid, this.orphans);
        this.sendPubrel(rid);
      }
      this.src.send({ cmd: 'pubrec', messageId: g.srcId, reasonCode: g.reasonCode });
      this.settle(g);
    } else {
      this.src.send({ cmd: 'pubrec', messageId: g.srcId, reasonCode: g.reasonCode });
      g.phase = 'rel';
      if (g.relLater) {
        g.relLater = false;
        this.onSourcePubrel(g.srcId);
      }
    }
    return 'ok';
  }

  /**
   * PUBREL from the source (QoS 2, second half). Unknown, toward a destination that takes no
   * QoS 2: its message was acknowledged before the PUBREC, and the PUBREL is completed here.
   */
  onSourcePubrel(messageId: number): void {
    const g = this.bySrc.get(messageId);
    if (!g && !this.destinationQos2) {
      this.src.send({ cmd: 'pubcomp', messageId, reasonCode: 0 });
      return;
    }
    if (!g) {
      // Unknown here: a QoS 2 flow begun on an earlier connection (resent after a reconnect).
      // The copy went out under the same id (ids are kept when free), so the PUBREL is passed
      // on and its PUBCOMP brought back; when the id is taken, it is completed here (0x92).
      const id = messageId > 0 ? this.ids.alloc(messageId) : 0;
      if (id !== messageId) this.ids.free(id);
      else if (id > 0) {
        const resumed = { ...this.newGroup(messageId, 2, false), phase: 'comp' as const, waiting: 1 };
        this.bySrc.set(messageId, resumed);
        this.byDst.set(messageId, resumed);
        this.hooks.onStart();
        this.sendPubrel(messageId);
        return;
      }
      this.src.send({ cmd: 'pubcomp', messageId, reasonCode: 0x92 });
      return;
    }
    // Early (a resend's PUBRECs are still awaited): released once they are in. Repeated while
    // the copies are being released: their PUBCOMPs will answer it.
    if (g.phase === 'ack') g.relLater = true;
    if (g.phase !== 'rel') return;
    if (g.relIds.length === 0) {
      this.src.send({ cmd: 'pubcomp', messageId, reasonCode: 0 });
      this.settle(g);
      return;
    }
    g.phase = 'comp';
    // Released: nothing will be resent, the copies need not be kept.
    g.sent = undefined;
    g.waiting = g.relIds.length;
    for (const id of g.relIds) {
      this.byDst.set(id, g);
      this.sendPubrel(id);
    }
    g.relIds = [];
  }

  /** Forgets everything (the session is closing). */
  clear(): void {
    for (const id of this.byDst.keys()) this.ids.free(id);
    for (const g of this.bySrc.values()) for (const id of g.relIds) this.ids.free(id);
    const settled = this.bySrc.size;
    this.byDst.clear();
    this.bySrc.clear();
    this.expect.clear();
    // Told once the relay is empty, so what they check sees it empty.
    for (let i = 0; i < settled; i++) this.hooks.onSettled(-1);
  }

  private newGroup(srcId: number, srcQos: QoS, local: boolean): Group {
    return {
      srcId,
      srcQos,
      waiting: 0,
      phase: 'ack',
      reasonCode: 0,
      relIds: [],
      sent: undefined,
      relLater: false,
      t0: Date.now(),
      local,
    };
  }

  /**
   * The source resent (DUP) a QoS 2 message it already had PUBREC for. Its QoS 2 copies go
   * out again under the same ids, so each destination recognises the duplicate (a QoS 2
   * receiver must not deliver it twice) and answers it as it sees fit (mosquitto: PUBREC, or
   * a protocol error after a second resend); the source gets PUBREC once every copy has
   * answered. QoS 1 copies were acknowledged already and are not sent again (a QoS 1
   * receiver would deliver them twice); with no QoS 2 copy the proxy answers PUBREC itself.
   */
  private resend(g: Group): void {
    if (g.relIds.length === 0) {
      this.src.send({ cmd: 'pubrec', messageId: g.srcId, reasonCode: 0 });
      return;
    }
    g.phase = 'ack';
    g.waiting = 0;
    for (const packet of g.sent ?? []) {
      const id = packet.messageId!;
      if (!g.relIds.includes(id)) continue;
      g.waiting++;
      this.byDst.set(id, g);
      this.expect.set(id, 'pubrec');
      this.dst.send({ ...packet, dup: true });
    }
    g.relIds = [];
  }

  private release(id: number): void {
    this.byDst.delete(id);
    this.expect.delete(id);
    this.ids.free(id);
  }

  private sendPubrel(id: number): void {
    this.expect.set(id, 'pubcomp');
    this.dst.send({ cmd: 'pubrel', messageId: id, reasonCode: 0 });
  }

  private ackSource(srcId: number, qos: QoS, reasonCode: number): void {
    this.src.send(
      qos === 1
        ? { cmd: 'puback', messageId: srcId, reasonCode }
        : { cmd: 'pubrec', messageId: srcId, reasonCode },
    );
  }

  private settle(g: Group): void {
    this.bySrc.delete(g.srcId);
    this.hooks.onSettled(g.t0);
  }
}
