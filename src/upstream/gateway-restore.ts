/**
 * Pieces of the gateway link (src/upstream/gateway.ts) that need none of its state: attaching
 * one device on a connection, and reading the platform's error reports.
 */
import type { PublishOut } from '../core/contract.js';
import type { Logger } from '../log/logger.js';
import { topicShape } from '../log/topic-shape.js';
import type { GatewayMember } from './gateway-member.js';
import type { NorthClient } from './north.js';

/**
 * Attaches a device on `client`, then makes its subscriptions (the automatic ones, and after
 * a reconnect the device's own again). Rejects when the attach is refused or the connection
 * goes. The same for a device's first attach and for every re-attach.
 */
export async function attachOn(
  client: NorthClient,
  m: GatewayMember,
  control: (client: NorthClient, out: PublishOut) => Promise<number>,
  log: Logger,
  attach: PublishOut = m.plan.attach,
): Promise<void> {
  const rc = await control(client, attach);
  if (rc >= 0x80) throw new Error(`attach refused (code ${rc})`);
  const auto = m.plan.subscriptions.length;
  const extras = [...m.extraSubscriptions];
  if (!auto && !extras.length) return;
  const granted = await client.subscribe([...m.plan.subscriptions, ...extras].map((s) => ({ ...s })));
  // Refusals are logged as on the first connection: the automatic ones by the device's
  // session, the device's own ones here (by shape: filters may hold secrets).
  if (auto) m.events.onAutoSubscribed?.(granted.slice(0, auto));
  const refused = extras.filter((_, i) => (granted[auto + i] ?? 0x80) >= 0x80);
  if (refused.length)
    log.warn(
      { refused: refused.map((s) => topicShape(s.topic)) },
      'north broker refused a re-subscription after the gateway reconnect: no downlinks on it',
    );
}

/**
 * Whether an attach carries a device JWT (`{"authorization": JWT}`) whose `exp` has passed
 * (or passes within `marginMs`): the platform would refuse it. A device's own JWT cannot be
 * renewed here; only the device can sign a new one, when it connects again.
 */
export function attachJwtExpired(out: PublishOut, nowMs: number, marginMs = 5000): boolean {
  let exp: unknown;
  try {
    const auth = (JSON.parse(out.payload.toString()) as { authorization?: unknown } | null)?.authorization;
    if (typeof auth !== 'string' || auth === '') return false;
    const body = auth.split('.')[1];
    if (body === undefined) return false;
    exp = (JSON.parse(Buffer.from(body, 'base64url').toString()) as { exp?: unknown } | null)?.exp;
  } catch {
    return false;
  }
  return typeof exp === 'number' && exp * 1000 <= nowMs + marginMs;
}

export interface ErrorReport {
  type: string;
  deviceId?: string;
  description?: string;
  /** The packet id of the PUBLISH the platform refused (it sends no PUBACK for it). */
  packetId?: number;
}

/** The error types ClearBlade documents; any other string reads as UNKNOWN (a metric label). */
const ERROR_TYPES = new Set([
  'GATEWAY_ATTACHMENT_ERROR',
  'GATEWAY_DEVICE_NOT_FOUND',
  'GATEWAY_INVALID_MQTT_TOPIC',
  'GATEWAY_UNEXPECTED_PACKET_ID',
  'GATEWAY_UNEXPECTED_MESSAGE_TYPE',
  'GATEWAY_DETACHMENT_DEVICE_ERROR',
  'UNKNOWN',
]);

/**
 * A report on the gateway's errors topic (JSON `{error_type, device_id, description}`);
 * undefined when it is not a JSON object (`null`, a number, an array are not reports either).
 */
export function parseErrorReport(payload: Buffer | string): ErrorReport | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(payload.toString());
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return undefined;
  const body = parsed as {
    error_type?: unknown;
    device_id?: unknown;
    description?: unknown;
    packet_id?: unknown;
  };
  const id = body.packet_id;
  return {
    type:
      typeof body.error_type === 'string' && ERROR_TYPES.has(body.error_type) ? body.error_type : 'UNKNOWN',
    deviceId: typeof body.device_id === 'string' ? body.device_id : undefined,
    description: typeof body.description === 'string' ? body.description : undefined,
    packetId: typeof id === 'number' && Number.isInteger(id) && id > 0 && id <= 0xffff ? id : undefined,
  };
}
