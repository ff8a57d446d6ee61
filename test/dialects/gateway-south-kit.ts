/**
 * Shared by the south gateway tests (ClearBlade-style gateways connecting to the proxy):
 * gateway client ids and JWTs, an MQTT.js client acting as the gateway that records what
 * arrives on its errors topic, and what a north mosquitto logged about a client.
 */
import type { KeyObject } from 'node:crypto';
import { type JwtClaims, nowSeconds, signJwt } from '../../src/auth/jwt.js';
import { connectClient, type MqttClient, subscribe } from '../helpers/clients.js';
import type { MosquittoBroker } from '../helpers/mosquitto.js';
import { until } from './kit.js';

export const PROJECT = 'p-gw-south';

export function clientIdFor(id: string, project = PROJECT): string {
  return `projects/${project}/locations/us-central1/registries/reg-1/devices/${id}`;
}

/** A JWT as ClearBlade wants it: iat, exp, aud = project; `claims` override. */
export function cbJwt(key: KeyObject, claims: JwtClaims = {}): string {
  const now = nowSeconds();
  return signJwt({ iat: now, exp: now + 1200, aud: PROJECT, ...claims }, key);
}

/** The SPKI PEM of a public key, as a credentials record holds it. */
export function publicPem(key: KeyObject): string {
  return key.export({ type: 'spki', format: 'pem' }).toString();
}

export interface GatewayError {
  error_type: string;
  device_id: string;
  [k: string]: unknown;
}

export interface TestGateway {
  client: MqttClient;
  /** The JWT it connected with (tests check it never leaks). */
  jwt: string;
  /** Every error received on /devices/{gatewayId}/errors, in order. */
  errors: GatewayError[];
  /** Waits for an error of this type for this device. */
  errorFor(type: string, deviceId: string, timeoutMs?: number): Promise<GatewayError>;
}

/** Connects as gateway `id` with a JWT signed by `key`, subscribed to its errors topic. */
export async function connectGateway(url: string, id: string, key: KeyObject): Promise<TestGateway> {
  const jwt = cbJwt(key);
  const client = await connectClient(url, {
    clientId: clientIdFor(id),
    username: 'unused',
    password: jwt,
    protocolVersion: 4,
  });
  const errors: GatewayError[] = [];
  const topic = `/devices/${id}/errors`;
  client.on('message', (t, payload) => {
    if (t === topic) errors.push(JSON.parse(payload.toString()) as GatewayError);
  });
  const granted = await subscribe(client, topic, { qos: 0 });
  if (granted[0]?.qos !== 0) throw new Error('the errors topic was not granted');
  const errorFor = async (type: string, deviceId: string, timeoutMs = 5000): Promise<GatewayError> => {
    const find = () => errors.find((e) => e.error_type === type && e.device_id === deviceId);
    await until(() => find() !== undefined, timeoutMs, `${type} for ${deviceId}`);
    return find() as GatewayError;
  };
  return { client, jwt, errors, errorFor };
}

/** Whether the north mosquitto logged a connection from client id `id`. */
export function northConnected(broker: MosquittoBroker, id: string): boolean {
  return broker.log().includes(` as ${id} (`);
}

/** Whether the north mosquitto logged client id `id` leaving (a DISCONNECT or a closed socket). */
export function northGone(broker: MosquittoBroker, id: string): boolean {
  const log = broker.log();
  return log.includes(`Client ${id} disconnected`) || log.includes(`Client ${id} closed its connection`);
}
