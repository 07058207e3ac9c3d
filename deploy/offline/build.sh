#!/usr/bin/env bash
# Stand-in images built from Debian packages, for machines that cannot pull from an
# image registry (air-gapped sites, CI sandboxes). Used only when the official image
# cannot be pulled; docker-compose.yaml names the official images.
#
#   deploy/offline/build.sh python postgres redis mariadb seaweedfs
#
# builds nightcast-offline/<name> for each name given (see the Dockerfiles next to
# this script) on top of nightcast-offline/debian:bookworm, a minimal Debian root
# file system made with debootstrap and `docker import`d. Needs root (debootstrap),
# a Docker engine and a reachable Debian mirror (DEBIAN_MIRROR). Images that exist
# already are kept (FORCE=1 rebuilds), so a second run costs seconds.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
suite="${DEBIAN_SUITE:-bookworm}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
base="nightcast-offline/debian:${suite}"

have_image() { [[ -z "${FORCE:-}" ]] && docker image inspect "$1" >/dev/null 2>&1; }

if ! have_image "$base"; then
  command -v debootstrap >/dev/null || { echo "offline images: debootstrap is not installed (apt-get install debootstrap)" >&2; exit 1; }
  rootfs="$(mktemp -d)"
  trap 'rm -rf "$rootfs"' EXIT
  echo "offline images: debootstrap $suite from $mirror"
  debootstrap --variant=minbase --include=ca-certificates "$suite" "$rootfs" "$mirror" >"$rootfs.log" 2>&1 \
    || { tail -20 "$rootfs.log" >&2; exit 1; }
  rm -f "$rootfs.log"
  # Keep images small: no apt caches or documentation in later layers.
  printf 'path-exclude /usr/share/doc/*\npath-exclude /usr/share/man/*\npath-exclude /usr/share/locale/*\n' \
    >"$rootfs/etc/dpkg/dpkg.cfg.d/01-nodoc"
  # The machine's own extra CAs (a TLS-inspecting proxy in front of PyPI, a private
  # mirror): builds on this base reach what this machine reaches. pip and uv read the
  # system bundle only when told to (SSL_CERT_FILE, PIP_CERT).
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
    chroot "$rootfs" update-ca-certificates >/dev/null 2>&1
  fi
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  # LANG: UTF-8 like the official images (C.UTF-8 needs no locales package).
  tar -C "$rootfs" -c . | docker import \
    --change 'ENV LANG=C.UTF-8 SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
    --change 'CMD ["bash"]' - "$base" >/dev/null
  echo "offline images: $base"
fi

declare -A tags=([python]=3.11 [postgres]=15 [redis]=7 [mariadb]=10.11 [seaweedfs]=4.48)
for name in "$@"; do
  tag="${tags[$name]:-}"
  [[ -n "$tag" ]] || { echo "offline images: unknown image '$name' (one of: ${!tags[*]})" >&2; exit 2; }
  image="nightcast-offline/$name:$tag"
  if have_image "$image"; then
    echo "offline images: $image (cached)"
    continue
  fi
  # --network host: the build's apt-get reaches the mirror the way this machine does.
  log="$(mktemp)"
  if ! docker build --network host --build-arg "BASE=$base" -t "$image" "$here/$name" >"$log" 2>&1; then
    tail -30 "$log" >&2
    rm -f "$log"
    exit 1
  fi
  rm -f "$log"
  echo "offline images: $image"
done
