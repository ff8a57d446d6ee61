/**
 * A south gateway (ClearBlade style) demultiplexed into one session per attached device:
 *
 *   gateway ──▶ GatewayFront ─┬─ attach dev-1 → InnerClient ⇄ Session(dev-1) ⇄ north (its own)
 *                             ├─ attach dev-2 → InnerClient ⇄ Session(dev-2) ⇄ north (its own)
 *                             └─ /devices/{gw}/errors ◀── errors for unattached devices
 *
 * The gateway authenticates itself (the route's openSession on its CONNECT, nothing north);
 * each attach opens an inner session, which connects as the device (with the device's JWT
 * from the attach payload when there is one, else on the gateway's authority) and is
 * translated like any device. The attach is acknowledged once that session is up; a detach
 * closes it. QoS 1 both ways, acknowledged end to end (a QoS 2 uplink goes north as QoS 1, its
 * PUBREC once the north acknowledged it; a resend of a message in flight is not sent twice).
 *
 * The gateway is a device too: when its record has north credentials, its own topics
 * (/devices/{gw}/events, state, config, commands) go through a session of its own, opened on
 * its CONNECT (the CONNACK waits for it, so its first publish finds it up) as an attached
 * device whose id is the gateway's. Without north credentials its own topics are refused
 * (GATEWAY_DEVICE_NOT_FOUND on its errors topic; gateway_errors_total{type="GATEWAY_NO_NORTH_IDENTITY"}).
 * A client of the route that is not a gateway never gets here (see gateway-pick.ts).
 */
import type { Duplex } from 'node:stream';
import type { IConnectPacket, IPublishPacket, ISubscribePacket, Packet } from 'mqtt-packet';
import { PacketChannel } from '../codec/channel.js';
import { InnerClient } from '../codec/inner-client.js';
import { streamPair } from '../codec/stream-pair.js';
import type { ConnectDecision, SouthGatewaySpec } from '../core/contract.js';
import { connackFor, REFUSED_SERVER_UNAVAILABLE } from './codes.js';
import type { SessionContext, SessionLike } from './context.js';
import { DownlinkWindow } from './downlink-window.js';
import { Session, type SouthInfo } from './session.js';

interface Device {
  client: InnerClient;
  attachId?: number;
  /** The PUBACKs of the gateway's attaches of the device while its session connects (each gets one). */
  attachAcks?: Array<() => void>;
  /** Inner packet id → the gateway's packet id (uplinks awaiting PUBACK). */
  up: Map<number, number>;
  /** Inner packet id → gateway's SUBSCRIBE/UNSUBSCRIBE request. */
  requests: Map<number, (p: Packet) => void>;
}

export class GatewayFront implements SessionLike {
  private readonly south: PacketChannel;
  private state: 'new' | 'connecting' | 'online' | 'closed' = 'new';
  private gatewayId = '';
  private gatewayClientId = '';
  private readonly devices = new Map<string, Device>();
  /** The gateway's QoS 1 and 2 uplinks not yet acknowledged north: its packet id → its QoS. */
  private readonly upQos = new Map<number, 1 | 2>();
  /** QoS 2 uplinks answered with PUBREC, until the gateway's PUBREL. */
  private readonly released = new Set<number>();
  /** Devices whose session is not reading (its north is blocked): the gateway is not read meanwhile. */
  private readonly blocked = new Set<Device>();
  /**
   * The gateway's socket is full: the devices' sessions are not read until it drains, so they
   * hold back their own north connections rather than queue here without bound.
   */
  private southFull = false;
  /** QoS 1 downlinks toward the gateway: at most limits.gatewayInflight unacknowledged. */
  private readonly window: DownlinkWindow<Device>;
  private readonly createdAt = Date.now();
  private keepaliveMs = 0;
  private errorsSubscribed = false;
  /**
   * Packets that came behind the CONNECT before the CONNACK (MQTT 3.1.1 §3.1.4 lets a client
   * send them at once): handled once online. The socket is not read meanwhile.
   */
  private early?: Packet[];
  /** The gateway's own topics are refused: its record has no north credentials (logged once). */
  private ownRefused: 'no' | 'quiet' | 'logged' = 'no';

  constructor(
    stream: Duplex,
    private readonly info: SouthInfo,
    private readonly ctx: SessionContext,
    private readonly spec: SouthGatewaySpec,
    /** The route's decision on this CONNECT, when it was taken before (gateway-pick.ts). */
    private pre?: { connect: IConnectPacket; decision: ConnectDecision },
  ) {
    this.south = new PacketChannel(
      stream,
      {
        onPacket: (p, bytes) => {
          ctx.meter.count('south_in', p.cmd, bytes);
          this.onPacket(p);
        },
        onClose: (reason) => this.close(reason),
        onDrain: () => this.southDrained(),
      },
      {
        maxPacketBytes: ctx.limits.maxPacketBytes,
        protocolVersion: 0,
        onWritten: (cmd, bytes) => ctx.meter.count('south_out', cmd, bytes),
      },
    );
    this.window = new DownlinkWindow<Device>(
      ctx.limits.gatewayInflight,
      (packet) => this.south.write(packet),
      (inflight) =>
        ctx.log.warn(
          { gateway: this.gatewayId, inflight },
          'south gateway is not acknowledging downlinks fast enough: its in-flight window (limits.gatewayInflight) is full, later QoS 1 downlinks wait for its PUBACKs',
        ),
    );
    ctx.sessions.add(this);
  }

  private onPacket(p: Packet): void {
    if (this.state === 'new') {
      if (p.cmd !== 'connect') {
        this.close('packet_before_connect');
        return;
      }
      void this.onConnect(p);
      return;
    }
    if (this.state === 'connecting') {
      this.early ??= [];
      this.early.push(p);
      this.south.pause();
      return;
    }
    if (this.state !== 'online') return;
    switch (p.cmd) {
      case 'publish': {
        this.onPublish(p);
        return;
      }
      case 'puback': {
        const d = this.window.acked(p.messageId ?? 0);
        d?.device.client.send({ cmd: 'puback', messageId: d.innerId });
        return;
      }
      case 'pubrel':
        // The second half of a QoS 2 uplink (an unknown id: completed all the same).
        this.released.delete(p.messageId ?? 0);
        this.south.write({ cmd: 'pubcomp', messageId: p.messageId });
        return;
      case 'subscribe': {
        this.onSubscribe(p);
        return;
      }
      case 'unsubscribe':
        // Each device's session drops its own filters (its north subscriptions with them).
        for (const topic of p.unsubscriptions) {
          const device = this.devices.get(this.spec.classify(topic)?.deviceId ?? '');
          if (device && device.attachId === undefined) {
            device.client.send({
              cmd: 'unsubscribe',
              messageId: device.client.allocId(),
              unsubscriptions: [topic],
            });
          }
        }
        this.south.write({ cmd: 'unsuback', messageId: p.messageId, granted: [] });
        return;
      case 'pingreq':
        this.south.write({ cmd: 'pingresp' });
        return;
      case 'disconnect': {
        this.close('client_disconnect');
        return;
      }
      default:
        // PUBREC/PUBCOMP (no QoS 2 goes to a gateway) and anything else: reported, carried on.
        this.error('GATEWAY_UNEXPECTED_MESSAGE_TYPE', this.gatewayId, { message_type: p.cmd });
    }
  }

  private async onConnect(connect: IConnectPacket): Promise<void> {
    this.state = 'connecting';
    this.keepaliveMs = (connect.keepalive ?? 0) * 1500;
    const gatewayId = this.spec.gatewayId(connect.clientId);
    if (!gatewayId) {
      this.south.write(connackFor(4, { returnCode: 2, reasonCode: 0x85 }));
      this.close('identifier_rejected');
      return;
    }
    let decision: ConnectDecision;
    const pre = this.pre?.connect.clientId === connect.clientId ? this.pre.decision : undefined;
    this.pre = undefined;
    try {
      const info = this.info;
      decision =
        pre ??
        (await this.ctx.route().openSession({
          connect,
          listener: info.listener,
          peerCommonName: info.peerCommonName,
          remoteAddress: info.remoteAddress,
        }));
    } catch {
      this.south.write(connackFor(4, REFUSED_SERVER_UNAVAILABLE));
      this.close('route_error');
      return;
    }
    if (!decision.accept) {
      this.ctx.metrics.authFailuresTotal.labels(decision.reason).inc();
      this.south.write(connackFor(4, decision));
      this.close(decision.reason);
      return;
    }
    // The gateway's own identity is checked; its traffic goes north per attached device, its
    // own topics through a session of its own when it has north credentials.
    decision.mapper.close();
    this.gatewayId = gatewayId;
    this.gatewayClientId = connect.clientId;
    const online = () => {
      if (this.state !== 'connecting') return;
      this.state = 'online';
      this.ctx.metrics.connectionsOpen.labels(this.info.listener, 'gateway').inc();
      this.ctx.metrics.connectionsTotal.labels(this.info.listener, 'gateway').inc();
      this.south.write({ cmd: 'connack', sessionPresent: false, returnCode: 0 });
      const early = this.early;
      this.early = undefined;
      if (!early) return;
      for (const p of early) this.onPacket(p);
      if (this.blocked.size === 0 && this.state === 'online') this.south.resume();
    };
    if (!decision.southGateway?.ownNorth) {
      this.ownRefused = 'quiet';
      online();
      return;
    }
    this.open(gatewayId, undefined, (ok) => {
      if (!ok)
        this.ctx.log.warn(
          { gateway: gatewayId },
          "gateway's own session refused north: its own topics are refused until it attaches itself",
        );
      online();
    });
  }

  /** The gateway's own topic without a session of its own: refused, counted, logged once. */
  private ownTopicRefused(topic: string): boolean {
    if (this.ownRefused === 'no' || this.devices.has(this.gatewayId)) return false;
    if (this.ownRefused === 'quiet') {
      this.ownRefused = 'logged';
      this.ctx.log.info(
        { gateway: this.gatewayId },
        "gateway's own topics refused: its record has no north credentials (gateway_errors_total GATEWAY_NO_NORTH_IDENTITY)",
      );
    }
    this.error(
      'GATEWAY_DEVICE_NOT_FOUND',
      this.gatewayId,
      { topic, description: 'the gateway has no north identity of its own' },
      'GATEWAY_NO_NORTH_IDENTITY',
    );
    return true;
  }

  private onPublish(p: IPublishPacket): void {
    const target = this.spec.classify(p.topic);
    if (!target) {
      this.error('GATEWAY_INVALID_MQTT_TOPIC', this.gatewayId, { topic: p.topic });
      return;
    }
    if (target.control === 'attach') {
      this.attach(target.deviceId, p);
      return;
    }
    const device = this.devices.get(target.deviceId);
    if (target.control === 'detach') {
      if (device) {
        // Attaches still under way are answered: the device ends detached, as the gateway asked.
        const acks = device.attachAcks;
        device.attachAcks = undefined;
        if (acks) for (const a of acks) a();
        this.detach(target.deviceId, device);
      }
      this.ackUp(p.messageId ?? 0, p.qos);
      return;
    }
    if (!device || device.attachId !== undefined) {
      if (target.deviceId === this.gatewayId && this.ownTopicRefused(p.topic)) return;
      this.error('GATEWAY_DEVICE_NOT_FOUND', target.deviceId, { topic: p.topic });
      return;
    }
    const qos = p.qos > 0 ? 1 : 0;
    const packet: IPublishPacket = { ...p, qos, dup: false };
    if (p.qos > 0) {
      const outerId = p.messageId ?? 0;
      // A resend of a message still in flight: the first copy's acknowledgement answers it.
      // A QoS 2 resend after PUBREC: answered again, not delivered twice.
      if (this.upQos.has(outerId)) return;
      if (p.qos === 2 && this.released.has(outerId)) {
        this.south.write({ cmd: 'pubrec', messageId: outerId });
        return;
      }
      this.upQos.set(outerId, p.qos === 2 ? 2 : 1);
      const innerId = device.client.allocId();
      packet.messageId = innerId;
      device.up.set(innerId, outerId);
    } else delete packet.messageId;
    // QoS 2 goes north as QoS 1; the gateway's own QoS 2 flow ends once the north has it.
    if (!device.client.send(packet)) {
      // Head-of-line, as on any connection: the gateway's socket waits for this device.
      this.blocked.add(device);
      this.south.pause();
    }
  }

  /** The gateway's socket took what was written: the devices' sessions are read again. */
  private southDrained(): void {
    if (!this.southFull) return;
    this.southFull = false;
    for (const d of this.devices.values()) d.client.resume();
  }

  /** A device's session reads again, or is gone: the gateway is read once no device waits. */
  private unblock(device: Device): void {
    if (this.blocked.delete(device) && this.blocked.size === 0 && this.state !== 'closed')
      this.south.resume();
  }

  /** Acknowledges the gateway's publish: PUBACK for QoS 1, PUBREC (then PUBREL/PUBCOMP) for 2. */
  private ackUp(messageId: number, qos: number): void {
    if (qos === 1) this.south.write({ cmd: 'puback', messageId, reasonCode: 0 });
    else if (qos === 2) {
      this.released.add(messageId);
      this.south.write({ cmd: 'pubrec', messageId });
    }
  }

  private attach(deviceId: string, p: IPublishPacket): void {
    const ack = () => this.ackUp(p.messageId ?? 0, p.qos);
    const existing = this.devices.get(deviceId);
    if (existing && existing.attachId === undefined) {
      ack();
      return;
    }
    if (existing) {
      // Attach in progress: this one is answered with it.
      existing.attachAcks ??= [];
      existing.attachAcks.push(ack);
      return;
    }
    let jwt: string | undefined;
    if (p.payload.length) {
      try {
        const body = JSON.parse(p.payload.toString()) as { authorization?: unknown };
        if (typeof body.authorization === 'string') jwt = body.authorization;
      } catch {
        this.error('GATEWAY_ATTACHMENT_ERROR', deviceId, { description: 'attach payload is not JSON' });
        return;
      }
    }
    const device = this.open(deviceId, jwt, (ok) => {
      const acks = device.attachAcks;
      device.attachAcks = undefined;
      if (!ok) this.error('GATEWAY_ATTACHMENT_ERROR', deviceId, { description: 'device not authorized' });
      else if (acks) for (const a of acks) a();
    });
    device.attachAcks = [ack];
  }

  /** Opens a device's own session (the gateway's own too); `done` once it is up or refused. */
  private open(deviceId: string, jwt: string | undefined, done: (ok: boolean) => void): Device {
    const [inner, outer] = streamPair();
    // Named fields, not a spread: a TCP connection's info reads its peer through getters,
    // which a spread leaves behind (the device's log lines would lose `conn`).
    const info = this.info;
    new Session(
      inner,
      {
        listener: info.listener,
        remoteAddress: info.remoteAddress,
        remotePort: info.remotePort,
        peerCommonName: info.peerCommonName,
        gateway: this.gatewayId,
      },
      this.ctx,
    );
    const device: Device = {
      attachId: 0,
      up: new Map(),
      requests: new Map(),
      client: new InnerClient(
        outer,
        {
          cmd: 'connect',
          clientId: this.spec.deviceClientId(this.gatewayClientId, deviceId),
          username: 'unused',
          // The device's north session keeps itself alive at the gateway's pace.
          keepalive: this.keepaliveMs / 1500 || 60,
          ...(jwt ? { password: Buffer.from(jwt) } : {}),
        },
        {
          onConnack: (c) => {
            if ((c.returnCode ?? 0) !== 0) {
              this.devices.delete(deviceId);
              device.client.close();
              done(false);
              return;
            }
            device.attachId = undefined;
            done(true);
          },
          onPacket: (pk) => this.fromDevice(deviceId, device, pk),
          onDrain: () => this.unblock(device),
          onClose: () => {
            this.unblock(device);
            if (this.devices.get(deviceId) !== device) return;
            this.devices.delete(deviceId);
            // Closed before its CONNACK (e.g. the route failed): refused all the same.
            if (device.attachId !== undefined) done(false);
          },
        },
      ),
    };
    this.devices.set(deviceId, device);
    return device;
  }

  private detach(deviceId: string, device: Device): void {
    this.devices.delete(deviceId);
    // Its uplinks in flight are never acknowledged: the gateway resends them when it can.
    for (const outerId of device.up.values()) this.upQos.delete(outerId);
    device.client.disconnect();
    this.window.forget(device);
    this.unblock(device);
  }

  /** A packet from an attached device's session: acks of uplinks, downlinks, SUBACKs. */
  private fromDevice(deviceId: string, device: Device, p: Packet): void {
    if (p.cmd === 'puback') {
      const outerId = device.up.get(p.messageId ?? 0);
      if (outerId === undefined) return;
      device.up.delete(p.messageId ?? 0);
      const qos = this.upQos.get(outerId) ?? 1;
      this.upQos.delete(outerId);
      this.ackUp(outerId, qos);
    } else if (p.cmd === 'publish') {
      if (p.qos === 0) this.south.write({ ...p, dup: false });
      else this.window.offer(device, { ...p, qos: 1, dup: false });
      if (this.south.blocked) {
        if (this.southFull) device.client.pause();
        else {
          this.southFull = true;
          for (const d of this.devices.values()) d.client.pause();
        }
      }
    } else if (p.cmd === 'suback' || p.cmd === 'unsuback') {
      const done = device.requests.get(p.messageId ?? 0);
      device.requests.delete(p.messageId ?? 0);
      done?.(p);
    } else if (p.cmd === 'disconnect') {
      this.detach(deviceId, device);
    }
  }

  private onSubscribe(p: ISubscribePacket): void {
    const granted: number[] = new Array(p.subscriptions.length).fill(0x80);
    const waits: Promise<void>[] = [];
    p.subscriptions.forEach((s, i) => {
      if (s.topic === this.spec.errorsTopic(this.gatewayId)) {
        this.errorsSubscribed = true;
        granted[i] = 0;
        return;
      }
      const deviceId = this.spec.classify(s.topic)?.deviceId ?? '';
      const device = this.devices.get(deviceId);
      if (!device || device.attachId !== undefined) {
        if (deviceId === this.gatewayId) this.ownTopicRefused(s.topic);
        return;
      }
      const id = device.client.allocId();
      waits.push(
        new Promise<void>((resolve) => {
          device.requests.set(id, (ack) => {
            const g = ack.cmd === 'suback' ? ((ack.granted as number[])[0] ?? 0x80) : 0x80;
            granted[i] = g >= 0x80 ? 0x80 : Math.min(1, g);
            resolve();
          });
          device.client.send({
            cmd: 'subscribe',
            messageId: id,
            subscriptions: [{ topic: s.topic, qos: s.qos > 1 ? 1 : s.qos }],
          });
        }),
      );
    });
    void Promise.all(waits).then(() => {
      if (this.state === 'online') this.south.write({ cmd: 'suback', messageId: p.messageId, granted });
    });
  }

  /** A best-effort error report on the gateway's errors topic (when it subscribed). */
  private error(type: string, deviceId: string, extra: Record<string, string>, counted = type): void {
    this.ctx.metrics.gatewayErrorsTotal.labels(counted).inc();
    if (!this.errorsSubscribed) return;
    const payload = Buffer.from(JSON.stringify({ error_type: type, device_id: deviceId, ...extra }));
    this.south.write({
      cmd: 'publish',
      topic: this.spec.errorsTopic(this.gatewayId),
      payload,
      qos: 0,
      retain: false,
      dup: false,
    });
  }

  tick(now: number): void {
    if (this.state === 'new' && now - this.createdAt > this.ctx.limits.connectTimeoutMs)
      this.close('connect_timeout');
    else if (
      this.state === 'online' &&
      this.keepaliveMs > 0 &&
      now - this.south.lastReadAt > this.keepaliveMs
    ) {
      this.close('keepalive_timeout');
    }
  }

  async drain(): Promise<void> {
    this.close('shutdown');
  }

  close(reason: string): void {
    if (this.state === 'closed') return;
    if (this.state === 'online') this.ctx.metrics.connectionsOpen.labels(this.info.listener, 'gateway').dec();
    this.state = 'closed';
    this.ctx.metrics.closesTotal.labels(reason).inc();
    this.ctx.sessions.delete(this);
    this.window.clear();
    for (const [id, d] of this.devices) this.detach(id, d);
    this.south.end();
  }
}
