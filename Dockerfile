# Keel runtime image: one image for both roles.
#   API:    npm run api     (default; listens on PORT=3000, HOST=0.0.0.0)
#   Worker: npm run worker
# TypeScript runs directly through tsx, which (like typescript) is a regular dependency,
# so `npm ci --omit=dev` is enough and there is no build step.
FROM node:20-slim

ENV NODE_ENV=production \
    NPM_CONFIG_UPDATE_NOTIFIER=false \
    NPM_CONFIG_FUND=false \
    HOST=0.0.0.0 \
    PORT=3000 \
    KEEL_CONFIG=/etc/keel/keel.yaml \
    KEEL_DATA_DIR=/var/lib/keel

WORKDIR /app

# Dependencies first, so source edits do not invalidate this layer.
COPY package.json package-lock.json ./
RUN npm ci --omit=dev \
    && npm cache clean --force

COPY tsconfig.json ./
COPY src/ ./src/
COPY workflows/ ./workflows/
COPY activities/ ./activities/
COPY scripts/ ./scripts/

# The file store (KEEL_DATA_DIR) and the config mount point, owned by the unprivileged
# `node` user (uid 1000) that ships with the base image. A named volume mounted on
# /var/lib/keel takes this ownership when it is first created.
RUN mkdir -p /var/lib/keel /etc/keel \
    && chown -R node:node /var/lib/keel

USER node

EXPOSE 3000

CMD ["npm", "run", "api"]
