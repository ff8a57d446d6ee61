# syntax=docker/dockerfile:1
# mqtt-dialect-proxy: multi-stage build. Configure the container with MQTT_PROXY_* environment
# variables alone (see README "Configuration"); mount mappings over /app/mappings to change them.

# ---- build: compile TypeScript with the dev dependencies -------------------------------------
FROM node:20-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# npm install honours the locked versions; npm ci would refuse a lock that lacks the
# optional platform packages of a dev tool (Biome) for platforms other than Linux.
RUN npm install --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# ---- runtime: production dependencies, compiled output and mappings only ---------------------
FROM node:20-slim AS runtime
ENV NODE_ENV=production \
    MQTT_PROXY_LOG_FORMAT=json \
    MQTT_PROXY_MAPPINGS_DIR=/app/mappings \
    MQTT_PROXY_STORE_FILE=/app/data/store.json \
    MQTT_PROXY_METRICS_PORT=9464
WORKDIR /app
COPY package.json package-lock.json ./
# Without devDependencies in package.json, npm ci installs exactly the locked production tree.
RUN npm pkg delete devDependencies \
    && npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
    && npm cache clean --force \
    && mkdir -p /app/data \
    && chown node:node /app/data
COPY --from=build /app/dist ./dist
COPY mappings ./mappings
# The image's unprivileged "node" user (uid 1000); nothing under /app but data/ is writable.
USER node
# MQTT (TCP), MQTT over WebSocket, MQTT over TLS, MQTT over secure WebSocket, metrics/health.
EXPOSE 1883 8080 8883 8443 9464
# /healthz on the metrics port and host (loopback when it listens on every address); with the
# metrics port off (-1) there is no endpoint to ask, and the check passes.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["node", "-e", "const e=process.env,p=e.MQTT_PROXY_METRICS_PORT||'9464';if(p==='-1')process.exit(0);let h=e.MQTT_PROXY_METRICS_HOST||'127.0.0.1';if(h==='0.0.0.0'||h==='::')h='127.0.0.1';if(h.includes(':'))h='['+h+']';fetch('http://'+h+':'+p+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# SIGTERM: stop accepting, tell clients, finish in-flight QoS 1 within MQTT_PROXY_SHUTDOWN_GRACE_MS.
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "dist/cli/main.js"]
