#!/usr/bin/env bash
# Stand-in images for a machine that reaches Debian's archive and PyPI (and npm) but no image
# registry. Everything starts from a debootstrapped Debian bookworm, `docker import`ed as a
# local base; each stand-in adds Debian's packages on top:
#
#   swagdigits-offline/debian:bookworm      the base (minbase + ca-certificates)
#   swagdigits-offline/python:3.11          python3 + venv          (stands in for python:3.11-slim-bookworm)
#   swagdigits-offline/node:bookworm        nodejs + npm 10         (stands in for node:20-bookworm-slim)
#   swagdigits-offline/redis:7              redis-server            (stands in for redis:7.2-alpine)
#   swagdigits-offline/prometheus:2         prometheus + wget       (stands in for prom/prometheus)
#   swagdigits-offline/nginx:1              nginx + curl            (stands in for nginx:1.27-bookworm)
#
# deploy/offline.yaml points docker-compose at them (the app image itself is built from the
# unchanged Dockerfile with those bases as build args, pip reaching PyPI):
#
#   deploy/offline-images.sh
#   docker-compose -f docker-compose.yaml -f deploy/offline.yaml up -d --build
#
# The base is kept while its recipe (the function base below, the mirrors and the host's extra
# CAs) is unchanged; the others are rebuilt from Docker's layer cache, so a second run costs
# seconds. --rebuild builds everything again. Installs run with --network host: a dockerd
# started with --iptables=false gives bridge containers no way out.
#
# Certificate authorities the host trusts beyond Debian's (/usr/local/share/ca-certificates,
# such as a TLS-inspecting proxy's) are trusted in the images too, and pip and npm are told to
# use the system's bundle, so builds reach PyPI and npm wherever the host does.
set -euo pipefail
cd "$(dirname "$0")/.."

PREFIX=${SWAGDIGITS_OFFLINE_PREFIX:-swagdigits-offline}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
SUITE=bookworm
REBUILD=0
[ "${1:-}" = "--rebuild" ] && REBUILD=1
# The legacy builder: Debian's docker.io ships no buildx plugin, which BuildKit needs.
export DOCKER_BUILDKIT=0
LABEL=org.swagdigits.offline-recipe
EXTRA_CAS=/usr/local/share/ca-certificates

log() { printf '==> %s\n' "$*" >&2; }

build() {  # build TAG [CONTEXT] (Dockerfile on stdin, FROM $BASE); unchanged steps come from the cache
  local tag=$1 context=${2:-} start=$SECONDS out
  local nocache=(); [ "$REBUILD" = 1 ] && nocache=(--no-cache)
  local where=(-); [ -n "$context" ] && where=(-f - "$context")
  if ! out=$(docker build --network host "${nocache[@]}" --build-arg "BASE=$PREFIX/debian:$SUITE" \
               -t "$tag" "${where[@]}" 2>&1); then
    printf '%s\n' "$out" | tail -30 >&2; echo "building $tag failed" >&2; exit 1
  fi
  log "$tag ready in $((SECONDS - start)) s"
}

base() {
  local tag=$PREFIX/debian:$SUITE start=$SECONDS
  local stamp
  stamp=$( { declare -f base; echo "$MIRROR $SECURITY_MIRROR"; cat "$EXTRA_CAS"/*.crt 2>/dev/null; } \
           | sha256sum | cut -c1-16)
  if [ "$REBUILD" = 0 ] && \
     [ "$(docker image inspect -f "{{index .Config.Labels \"$LABEL\"}}" "$tag" 2>/dev/null)" = "$stamp" ]; then
    log "$tag is current"; return
  fi
  command -v debootstrap >/dev/null || { echo "debootstrap is not installed (apt-get install debootstrap)" >&2; exit 1; }
  local root
  root=$(mktemp -d "${TMPDIR:-/var/tmp}/swagdigits-rootfs.XXXXXX")
  trap 'umount -R "$root/proc" "$root/sys" 2>/dev/null || true; rm -rf --one-file-system "$root"' RETURN
  log "debootstrap $SUITE from $MIRROR"
  debootstrap --variant=minbase --include=ca-certificates "$SUITE" "$root" "$MIRROR" >"$root.log" 2>&1 \
    || { tail -20 "$root.log" >&2; exit 1; }
  rm -f "$root.log"
  if compgen -G "$EXTRA_CAS/*.crt" >/dev/null; then
    cp "$EXTRA_CAS"/*.crt "$root/usr/local/share/ca-certificates/"
    chroot "$root" update-ca-certificates >/dev/null
  fi
  cat >"$root/etc/apt/sources.list" <<SOURCES
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb $SECURITY_MIRROR $SUITE-security main
SOURCES
  # As Debian's own container images: no services started by package scripts, no
  # recommends, no documentation, no apt caches.
  printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
  chmod +x "$root/usr/sbin/policy-rc.d"
  cat >"$root/etc/apt/apt.conf.d/90container" <<'APT'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };
APT
  cat >"$root/etc/dpkg/dpkg.cfg.d/90container" <<'DPKG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
DPKG
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/log/*.log "$root"/usr/share/doc/*/[!c]* \
         "$root"/usr/share/man/* "$root"/usr/share/locale/*
  log "importing $tag"
  tar --numeric-owner -C "$root" -c . | docker import \
    --change 'CMD ["bash"]' --change 'ENV LANG=C.UTF-8' --change "LABEL $LABEL=$stamp" \
    --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
    --change 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt' - "$tag" >/dev/null
  log "$tag built in $((SECONDS - start)) s"
}

total=$SECONDS
base

build "$PREFIX/python:3.11" <<'DOCKERFILE'
ARG BASE
FROM $BASE
# python3 is 3.11 in bookworm; python-is-python3 gives `python` as the official image has it.
RUN apt-get update && apt-get install -y python3 python3-venv python-is-python3 \
 && rm -rf /var/lib/apt/lists/*
CMD ["python3"]
DOCKERFILE

# Debian's nodejs (18) with npm 10 from the npm registry: Debian's own npm package drags in
# ~380 packages (minutes of apt), while npm is one self-contained tarball.
NPM_VERSION=10.9.9
npm_dir=$(mktemp -d)
trap 'rm -rf "$npm_dir"' EXIT
command -v npm >/dev/null || { echo "npm is not installed (apt-get install npm)" >&2; exit 1; }
(cd "$npm_dir" && npm pack --silent "npm@$NPM_VERSION" >/dev/null && mv "npm-$NPM_VERSION.tgz" npm.tgz)
build "$PREFIX/node:$SUITE" "$npm_dir" <<'DOCKERFILE'
ARG BASE
FROM $BASE
RUN apt-get update && apt-get install -y nodejs && rm -rf /var/lib/apt/lists/*
COPY npm.tgz /tmp/npm.tgz
RUN mkdir -p /usr/local/lib/node_modules/npm \
 && tar -xzf /tmp/npm.tgz -C /usr/local/lib/node_modules/npm --strip-components=1 --no-same-owner \
 && rm /tmp/npm.tgz \
 && ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \
 && npm --version
CMD ["node"]
DOCKERFILE

build "$PREFIX/redis:7" <<'DOCKERFILE'
ARG BASE
FROM $BASE
RUN apt-get update && apt-get install -y redis-server && rm -rf /var/lib/apt/lists/* \
 && mkdir /data && chown redis:redis /data \
 && printf '%s\n' '#!/bin/sh' \
    '# As the official image: redis-server given flags but no config file listens to other containers.' \
    'if [ "$1" = redis-server ] && ! echo "$2" | grep -q "\.conf$"; then shift; set -- redis-server --protected-mode no "$@"; fi' \
    'exec "$@"' >/usr/local/bin/docker-entrypoint.sh \
 && chmod +x /usr/local/bin/docker-entrypoint.sh
WORKDIR /data
VOLUME /data
USER redis
EXPOSE 6379
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["redis-server"]
DOCKERFILE

build "$PREFIX/prometheus:2" <<'DOCKERFILE'
ARG BASE
FROM $BASE
# wget: compose's health check uses it, as in the official (busybox) image.
RUN apt-get update && apt-get install -y prometheus wget && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /prometheus && chown nobody:nogroup /prometheus
WORKDIR /prometheus
VOLUME /prometheus
USER nobody
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
DOCKERFILE

build "$PREFIX/nginx:1" <<'DOCKERFILE'
ARG BASE
FROM $BASE
# As the official image: only conf.d/ holds servers, logs go to the container's output;
# curl: compose's health check uses it.
RUN apt-get update && apt-get install -y nginx curl && rm -rf /var/lib/apt/lists/* \
 && rm -f /etc/nginx/sites-enabled/* \
 && ln -sf /dev/stdout /var/log/nginx/access.log && ln -sf /dev/stderr /var/log/nginx/error.log
EXPOSE 8080
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
DOCKERFILE

log "stand-in images ready in $((SECONDS - total)) s"
