# Sourced by scripts/check-aarch64: build, cache and enter an arm64 Debian rootfs.
# The rootfs is cached as a zstd tarball keyed by everything that shapes it (suite, mirror,
# variant, package list, ROOTFS_FORMAT), so a changed requirement builds a new one.

ROOTFS_FORMAT=1
DEBIAN_MIRROR="${EDGECLS_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# python3-venv brings ensurepip's pip wheel: the chroot's own pip installs the device wheels.
# python3-pywt: a Debian module compiled against the suite's own numpy (1.24 on Bookworm),
# the stand-in for apt's picamera2/simplejpeg in the Pi OS venv check.
ROOTFS_PACKAGES="python3,python3-venv,python3-numpy,python3-pywt"

rootfs_key() {  # rootfs_key SUITE
  printf '%s\n' "$1" "$DEBIAN_MIRROR" minbase "$ROOTFS_PACKAGES" "$ROOTFS_FORMAT" | sha256sum | cut -c1-12
}

# unmount_under DIR: lazily unmount everything mounted at or below DIR, deepest first, so
# removing DIR never walks into a live /proc (debootstrap mounts one in its target and can
# leave it there when it fails).
unmount_under() {
  local dir m
  dir="$(realpath -m "$1")"
  findmnt -rn -o TARGET 2>/dev/null | awk -v d="$dir" '$0 == d || index($0, d "/") == 1' | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null || log "note: could not unmount $m"; done
}

# The folder a build_rootfs is filling, for the caller's EXIT trap: a run stopped mid-build
# (CI's timeout, Ctrl-C) must not leave it, nor the /proc debootstrap mounted inside it.
ROOTFS_BUILD_TMP=""
discard_rootfs_build() {
  [ -n "$ROOTFS_BUILD_TMP" ] || return 0
  unmount_under "$ROOTFS_BUILD_TMP"
  rm -rf "$ROOTFS_BUILD_TMP"
  ROOTFS_BUILD_TMP=""
}

# build_rootfs SUITE TARBALL: debootstrap into a temporary folder, then pack it.
build_rootfs() {
  local suite="$1" tarball="$2" tmp
  tmp="$(mktemp -d "${CACHE}/build-${suite}.XXXX")"
  ROOTFS_BUILD_TMP="$tmp"
  log "building the ${suite} arm64 rootfs (debootstrap, several minutes; cached in ${tarball})"
  if ! debootstrap --arch=arm64 --variant=minbase --include="$ROOTFS_PACKAGES" \
      "$suite" "$tmp/root" "$DEBIAN_MIRROR" > "$tmp/debootstrap.log" 2>&1; then
    tail -n 20 "$tmp/debootstrap.log" >&2
    discard_rootfs_build
    return 1
  fi
  # Nothing from the build machine's package cache is needed inside.
  rm -rf "$tmp/root/var/cache/apt/archives/"*.deb "$tmp/root/var/lib/apt/lists/"*
  unmount_under "$tmp"
  tar -C "$tmp/root" --numeric-owner -cf - . | zstd -q -T0 -3 -o "$tmp/rootfs.tar.zst"
  mv "$tmp/rootfs.tar.zst" "$tarball"
  discard_rootfs_build
}
