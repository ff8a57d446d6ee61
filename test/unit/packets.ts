/**
 * A catalogue of valid packets of every type, per protocol version (3 = 3.1, 4 = 3.1.1,
 * 5 = 5.0), as mqtt-packet objects. Used by the round-trip tests and as fuzz seeds.
 */
import type { Packet } from 'mqtt-packet';

export type Version = 3 | 4 | 5;

export interface Sample {
  name: string;
  packet: Packet;
}

const payload = Buffer.from('{"t":21.5,"bin":"\u0000\u00ff"}');

/** CONNACK code field: a 3.1/3.1.1 return code, or its MQTT 5 reason code. */
function code(v: Version, returnCode: number): { returnCode: number } | { reasonCode: number } {
  const v5: Record<number, number> = { 0: 0, 5: 0x87 };
  return v === 5 ? { reasonCode: v5[returnCode] ?? 0x80 } : { returnCode };
}

/**
 * MQTT 5 acknowledgements carry reason code 0 explicitly, so mqtt-packet emits the short
 * form (the form it parses back to the same object).
 */
function ok(v: Version): { reasonCode?: number } {
  return v === 5 ? { reasonCode: 0 } : {};
}

/**
 * An MQTT 5 UNSUBACK: mqtt-packet reads and writes its reason codes as `granted`, a field
 * its type declarations do not list.
 */
function unsuback(fields: {
  messageId: number;
  granted?: number[];
  properties?: { reasonString: string };
}): Packet {
  return { cmd: 'unsuback', ...fields } as Packet;
}

function common(v: Version): Sample[] {
  const protocolId = v === 3 ? 'MQIsdp' : 'MQTT';
  return [
    {
      name: 'CONNECT minimal',
      packet: {
        cmd: 'connect',
        protocolId,
        protocolVersion: v,
        clientId: 'dev-1',
        clean: true,
        keepalive: 60,
      },
    },
    {
      name: 'CONNECT with will and credentials',
      packet: {
        cmd: 'connect',
        protocolId,
        protocolVersion: v,
        clientId: 'dev-2',
        clean: false,
        keepalive: 30,
        username: 'user',
        password: Buffer.from('pass word'),
        will: { topic: 'dev/2/status', payload: Buffer.from('offline'), qos: 1, retain: true },
      },
    },
    { name: 'CONNACK accepted', packet: { cmd: 'connack', sessionPresent: false, ...code(v, 0) } },
    { name: 'CONNACK session present', packet: { cmd: 'connack', sessionPresent: true, ...code(v, 0) } },
    { name: 'CONNACK refused', packet: { cmd: 'connack', sessionPresent: false, ...code(v, 5) } },
    {
      name: 'PUBLISH QoS 0',
      packet: { cmd: 'publish', topic: 'a/b', payload, qos: 0, retain: false, dup: false },
    },
    {
      name: 'PUBLISH QoS 0 empty payload retained',
      packet: { cmd: 'publish', topic: 'a/b', payload: Buffer.alloc(0), qos: 0, retain: true, dup: false },
    },
    {
      name: 'PUBLISH QoS 1',
      packet: { cmd: 'publish', topic: 'a/b/c', payload, qos: 1, retain: false, dup: false, messageId: 7 },
    },
    {
      name: 'PUBLISH QoS 1 DUP',
      packet: { cmd: 'publish', topic: 'a/b/c', payload, qos: 1, retain: false, dup: true, messageId: 7 },
    },
    {
      name: 'PUBLISH QoS 2 retained, id 65535',
      packet: { cmd: 'publish', topic: 'x', payload, qos: 2, retain: true, dup: false, messageId: 65535 },
    },
    {
      name: 'PUBLISH large payload (3-byte remaining length)',
      packet: {
        cmd: 'publish',
        topic: 'big',
        payload: Buffer.alloc(20_000, 0xab),
        qos: 1,
        retain: false,
        dup: false,
        messageId: 3,
      },
    },
    { name: 'PUBACK', packet: { cmd: 'puback', messageId: 7, ...ok(v) } },
    { name: 'PUBREC', packet: { cmd: 'pubrec', messageId: 8, ...ok(v) } },
    { name: 'PUBREL', packet: { cmd: 'pubrel', messageId: 8, ...ok(v) } },
    { name: 'PUBCOMP', packet: { cmd: 'pubcomp', messageId: 8, ...ok(v) } },
    {
      name: 'SUBSCRIBE two filters',
      packet: {
        cmd: 'subscribe',
        messageId: 9,
        subscriptions: [
          { topic: 'a/+/c', qos: 0 },
          { topic: 'd/#', qos: 2 },
        ],
      },
    },
    { name: 'SUBACK', packet: { cmd: 'suback', messageId: 9, granted: [0, 2, 128] } },
    { name: 'UNSUBSCRIBE', packet: { cmd: 'unsubscribe', messageId: 10, unsubscriptions: ['a/+/c', 'd/#'] } },
    {
      name: 'UNSUBACK',
      packet: v === 5 ? unsuback({ messageId: 10, granted: [0, 0] }) : unsuback({ messageId: 10 }),
    },
    { name: 'PINGREQ', packet: { cmd: 'pingreq' } },
    { name: 'PINGRESP', packet: { cmd: 'pingresp' } },
    { name: 'DISCONNECT', packet: { cmd: 'disconnect' } },
  ];
}

function v5Only(): Sample[] {
  const v = 5 as const;
  return [
    {
      name: 'CONNECT v5 with properties, will properties and credentials',
      packet: {
        cmd: 'connect',
        protocolId: 'MQTT',
        protocolVersion: v,
        clientId: 'dev-5',
        clean: true,
        keepalive: 10,
        username: 'u5',
        password: Buffer.from('p5'),
        properties: {
          sessionExpiryInterval: 3600,
          receiveMaximum: 20,
          maximumPacketSize: 65536,
          topicAliasMaximum: 10,
          requestResponseInformation: true,
          requestProblemInformation: false,
          userProperties: { site: 'lab', rack: ['r1', 'r2'] },
          authenticationMethod: 'SCRAM',
          authenticationData: Buffer.from([1, 2, 3]),
        },
        will: {
          topic: 'dev/5/lwt',
          payload: Buffer.from('gone'),
          qos: 2,
          retain: false,
          properties: {
            willDelayInterval: 5,
            payloadFormatIndicator: true,
            messageExpiryInterval: 60,
            contentType: 'text/plain',
            responseTopic: 'dev/5/resp',
            correlationData: Buffer.from('corr'),
            userProperties: { why: 'test' },
          },
        },
      },
    },
    {
      name: 'CONNACK v5 with properties',
      packet: {
        cmd: 'connack',
        sessionPresent: false,
        reasonCode: 0,
        properties: {
          sessionExpiryInterval: 60,
          receiveMaximum: 100,
          maximumQoS: 1,
          retainAvailable: false,
          maximumPacketSize: 100000,
          assignedClientIdentifier: 'auto-1',
          topicAliasMaximum: 5,
          reasonString: 'welcome',
          userProperties: { a: 'b' },
          wildcardSubscriptionAvailable: true,
          subscriptionIdentifiersAvailable: true,
          sharedSubscriptionAvailable: false,
          serverKeepAlive: 30,
          responseInformation: 'resp/',
          serverReference: 'other',
        },
      },
    },
    { name: 'CONNACK v5 refused 0x86', packet: { cmd: 'connack', sessionPresent: false, reasonCode: 0x86 } },
    {
      name: 'PUBLISH v5 QoS 1 with every property',
      packet: {
        cmd: 'publish',
        topic: 'v5/t',
        payload,
        qos: 1,
        retain: false,
        dup: false,
        messageId: 11,
        properties: {
          payloadFormatIndicator: true,
          messageExpiryInterval: 120,
          topicAlias: 3,
          responseTopic: 'v5/resp',
          correlationData: Buffer.from([0xde, 0xad, 0xbe, 0xef]),
          userProperties: { k: 'v', multi: ['1', '2'] },
          subscriptionIdentifier: 268435455,
          contentType: 'application/json',
        },
      },
    },
    {
      name: 'PUBLISH v5 QoS 2 topic alias only (empty topic)',
      packet: {
        cmd: 'publish',
        topic: '',
        payload,
        qos: 2,
        retain: false,
        dup: false,
        messageId: 12,
        properties: { topicAlias: 3 },
      },
    },
    {
      name: 'PUBLISH v5 QoS 0 several subscription identifiers',
      packet: {
        cmd: 'publish',
        topic: 'v5/s',
        payload,
        qos: 0,
        retain: false,
        dup: false,
        properties: { subscriptionIdentifier: [1, 200, 70000] },
      },
    },
    { name: 'PUBACK v5 reason 0x10', packet: { cmd: 'puback', messageId: 11, reasonCode: 0x10 } },
    {
      name: 'PUBACK v5 reason 0x87 with properties',
      packet: {
        cmd: 'puback',
        messageId: 11,
        reasonCode: 0x87,
        properties: { reasonString: 'no', userProperties: { x: 'y' } },
      },
    },
    { name: 'PUBREC v5 reason 0x80', packet: { cmd: 'pubrec', messageId: 12, reasonCode: 0x80 } },
    { name: 'PUBREL v5 reason 0x92', packet: { cmd: 'pubrel', messageId: 12, reasonCode: 0x92 } },
    {
      name: 'PUBCOMP v5 reason 0x92 with reason string',
      packet: { cmd: 'pubcomp', messageId: 12, reasonCode: 0x92, properties: { reasonString: 'unknown id' } },
    },
    {
      name: 'SUBSCRIBE v5 with nl/rap/rh and properties',
      packet: {
        cmd: 'subscribe',
        messageId: 13,
        subscriptions: [
          { topic: 'v5/a', qos: 1, nl: true, rap: false, rh: 0 },
          { topic: 'v5/b/#', qos: 2, nl: false, rap: true, rh: 1 },
          { topic: '$share/g/v5/c', qos: 0, nl: false, rap: false, rh: 2 },
        ],
        properties: { subscriptionIdentifier: 42, userProperties: { s: 't' } },
      },
    },
    {
      name: 'SUBACK v5 with reasons and properties',
      packet: {
        cmd: 'suback',
        messageId: 13,
        granted: [1, 2, 0x87],
        properties: { reasonString: 'partly', userProperties: { a: '1' } },
      },
    },
    {
      name: 'UNSUBSCRIBE v5 with properties',
      packet: {
        cmd: 'unsubscribe',
        messageId: 14,
        unsubscriptions: ['v5/a'],
        properties: { userProperties: { u: 'v' } },
      },
    },
    {
      name: 'UNSUBACK v5 with reason codes',
      packet: unsuback({ messageId: 14, granted: [0, 0x11], properties: { reasonString: 'r' } }),
    },
    {
      name: 'DISCONNECT v5 with reason and properties',
      packet: {
        cmd: 'disconnect',
        reasonCode: 0x8b,
        properties: {
          sessionExpiryInterval: 0,
          reasonString: 'shutting down',
          serverReference: 'elsewhere',
          userProperties: { d: 'e' },
        },
      },
    },
    { name: 'DISCONNECT v5 reason 0x04 (with will)', packet: { cmd: 'disconnect', reasonCode: 0x04 } },
    {
      name: 'AUTH v5',
      packet: {
        cmd: 'auth',
        reasonCode: 0x18,
        properties: {
          authenticationMethod: 'SCRAM',
          authenticationData: Buffer.from('challenge'),
          reasonString: 'continue',
          userProperties: { n: '1' },
        },
      },
    },
  ];
}

/** Every sample valid in protocol version `v`. */
export function samples(v: Version): Sample[] {
  return v === 5 ? [...common(5), ...v5Only()] : common(v);
}
