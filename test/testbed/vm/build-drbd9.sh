#!/usr/bin/env bash
# The DRBD 9 kernel module for the node VMs' kernel, built once from LINBIT's source tarball into a
# cache folder keyed by tarball and kernel version: a copy of prepare-kernel.sh's module tree with
# drbd.ko, drbd_transport_tcp.ko and the compat handshake.ko under updates/ (ranked before the
# in-tree DRBD 8.4). Prints the folder, which build-initrd.sh and the VMs' boot take as KERNEL_DIR.
# Usage: build-drbd9.sh CACHE KERNEL_DIR TARBALL. Needs linux-headers-$kv and coccinelle (SPAAS=false:
# the compat patches are generated here, never by LINBIT's online service).
set -euo pipefail
cache=$1 kdir=$2 tarball=$3
kv=$(basename "$kdir")
src=$(basename "$tarball" .tar.gz)
sum=$(sha256sum "$tarball" | cut -c1-12)
# The folder ends in the kernel version, as prepare-kernel.sh's does: build-initrd.sh reads it there.
out=$cache/$src-$sum/$kv
if [ ! -f "$out/ready" ]; then
  headers=/usr/src/linux-headers-$kv
  [ -d "$headers" ] || { echo "no $headers: apt-get install linux-headers-$kv (bash .ci/run does)" >&2; exit 1; }
  command -v spatch >/dev/null || { echo "no spatch: apt-get install coccinelle (bash .ci/run does)" >&2; exit 1; }
  rm -rf "$out" && mkdir -p "$out/build"
  tar -xzf "$tarball" -C "$out/build"
  if ! make -C "$out/build/$src" -j"$(nproc)" KDIR="$headers" SPAAS=false >"$out/build.log" 2>&1; then
    tail -40 "$out/build.log" >&2
    echo "the DRBD 9 module did not build against $headers (log: $out/build.log)" >&2
    exit 1
  fi
  cp -a "$kdir/root" "$out/root"
  dest=$out/root/lib/modules/$kv/updates/drbd9
  mkdir -p "$dest"
  built=$out/build/$src/drbd/build-$kv
  for m in drbd.ko drbd_transport_tcp.ko drbd-kernel-compat/handshake/handshake.ko; do
    strip --strip-debug -o "$dest/$(basename "$m")" "$built/$m"
  done
  depmod -b "$out/root" "$kv"
  rm -rf "$out/build"
  touch "$out/ready" "$out/ready-md"
fi
# A tree copied before the node tree had drivers/md (dm-mod, for LVM) gets it now, without a rebuild.
if [ ! -f "$out/ready-md" ]; then
  rm -rf "$out/root/lib/modules/$kv/kernel"
  cp -a "$kdir/root/lib/modules/$kv/kernel" "$out/root/lib/modules/$kv/kernel"
  depmod -b "$out/root" "$kv"
  touch "$out/ready-md"
fi
echo "$out"
