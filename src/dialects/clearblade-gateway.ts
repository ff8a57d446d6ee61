/**
 * The ClearBlade IoT Core (Google Cloud IoT Core) gateway grammar, for gateways that connect
 * south: client ids `projects/{p}/locations/{r}/registries/{reg}/devices/{id}`, device topics
 * `/devices/{id}/...`, control topics `/devices/{id}/attach|detach`, errors on
 * `/devices/{gatewayId}/errors`. Pure string work, no state.
 */
import type { SouthGatewaySpec } from '../core/contract.js';

const CLIENT_ID = /^projects\/[^/]+\/locations\/[^/]+\/registries\/[^/]+\/devices\/([^/]+)$/;

export const clearbladeGateway: SouthGatewaySpec = {
  gatewayId(clientId) {
    return CLIENT_ID.exec(clientId)?.[1];
  },
  classify(topic) {
    if (!topic.startsWith('/devices/')) return undefined;
    const end = topic.indexOf('/', 9);
    const deviceId = end < 0 ? topic.slice(9) : topic.slice(9, end);
    if (!deviceId) return undefined;
    const rest = end < 0 ? '' : topic.slice(end + 1);
    if (rest === 'attach' || rest === 'detach') return { deviceId, control: rest };
    return { deviceId };
  },
  deviceClientId(gatewayClientId, deviceId) {
    return gatewayClientId.replace(/\/devices\/[^/]+$/, `/devices/${deviceId}`);
  },
  errorsTopic(gatewayId) {
    return `/devices/${gatewayId}/errors`;
  },
};
