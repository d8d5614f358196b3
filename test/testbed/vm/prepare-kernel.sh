#!/usr/bin/env bash
# Debian's kernel for the DRBD node VMs (its in-tree drbd.ko is DRBD 8.4.11), kept in a cache folder:
# only vmlinuz and the modules the nodes load (device-mapper for LVM too). Prints the folder.
# Usage: prepare-kernel.sh CACHE
set -euo pipefail
cache=$1
pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
[ -n "$pkg" ] || { echo "apt-cache knows no linux-image-amd64 (run apt-get update)" >&2; exit 1; }
kv=${pkg#linux-image-}
out=$cache/$kv
# "ready-md": a folder made before device-mapper was extracted is made again.
if [ ! -f "$out/ready-md" ]; then
  rm -rf "$out" && mkdir -p "$out/root"
  (cd "$out" && apt-get download -q "$pkg" >/dev/null)
  dpkg-deb --fsys-tarfile "$out"/"$pkg"_*.deb | tar -x -C "$out/root" --wildcards \
    "./boot/vmlinuz-$kv" "./lib/modules/$kv/modules.*" "./lib/modules/$kv/kernel/drivers/block/*" \
    "./lib/modules/$kv/kernel/drivers/virtio/*" "./lib/modules/$kv/kernel/drivers/net/*" \
    "./lib/modules/$kv/kernel/net/core/*" "./lib/modules/$kv/kernel/lib/*" "./lib/modules/$kv/kernel/crypto/*" \
    "./lib/modules/$kv/kernel/drivers/md/*"
  depmod -b "$out/root" "$kv"
  rm -f "$out"/"$pkg"_*.deb
  touch "$out/ready" "$out/ready-md"
fi
echo "$out"
