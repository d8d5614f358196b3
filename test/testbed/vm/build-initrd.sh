#!/usr/bin/env bash
# The node VMs' initramfs: busybox, sshd, drbd-utils (its DRBD 9 tools and the 8.4 ones), LVM (the
# volumes a new secondary's copy is made in), QEMU with its TCG module and SeaBIOS, the modules DRBD,
# virtio and device-mapper need, and the per-run keys. One image for every node: /init picks its
# identity from the kernel command line.
# Usage: build-initrd.sh KERNEL_DIR WORK_DIR [DRBD_MODULE]: KERNEL_DIR from prepare-kernel.sh or
# build-drbd9.sh; WORK_DIR holds ssh/ with host_node-? (one per node), authorized_keys, drbd.conf;
# DRBD_MODULE is the module that pulls DRBD in: drbd (the default: 8.4) or drbd_transport_tcp
# (DRBD 9). Writes WORK_DIR/initrd.cpio.gz.
set -euo pipefail
kdir=$1 work=$2 drbd_module=${3:-drbd}
here=$(cd "$(dirname "$0")" && pwd)
kv=$(basename "$kdir")
R=$work/initrd
rm -rf "$R"
mkdir -p "$R"/usr/{bin,sbin,lib/x86_64-linux-gnu/qemu,lib/drbd,lib64,share/seabios} \
  "$R"/{etc/ssh,proc,sys,dev,run,tmp,root,var/lock,var/lib/drbd,var/empty}
for d in bin sbin lib lib64; do ln -s usr/$d "$R/$d"; done

bins=(/usr/sbin/sshd /usr/sbin/drbdsetup /usr/sbin/drbdadm /usr/sbin/drbdmeta /usr/sbin/lvm /usr/bin/qemu-system-x86_64)
cp /bin/busybox "$R/usr/bin/"
cp "${bins[@]:0:5}" "$R/usr/sbin/"
# LVM's commands are one binary named by argv[0]; no udev in the VMs: LVM makes its device nodes.
for c in pvcreate vgcreate vgchange vgs lvs lvcreate lvremove; do ln -s lvm "$R/usr/sbin/$c"; done
mkdir -p "$R/etc/lvm" "$R/run/lvm"
printf 'activation {\n udev_sync = 0\n udev_rules = 0\n monitoring = 0\n}\ndevices {\n obtain_device_list_from_udev = 0\n}\n' >"$R/etc/lvm/lvm.conf"
cp /usr/bin/qemu-system-x86_64 "$R/usr/bin/"
cp /lib/drbd/drbdsetup-84 /lib/drbd/drbdadm-84 "$R/usr/lib/drbd/"
# Debian's QEMU loads TCG as a module (ldd does not show it); -machine pc needs only SeaBIOS.
cp /usr/lib/x86_64-linux-gnu/qemu/accel-tcg-x86_64.so "$R/usr/lib/x86_64-linux-gnu/qemu/"
cp /usr/share/seabios/bios-256k.bin "$R/usr/share/seabios/"
mkdir -p "$R/usr/share/qemu" && cp /usr/share/qemu/kvmvapic.bin "$R/usr/share/qemu/"
for b in "${bins[@]}" /lib/drbd/drbdsetup-84 /lib/drbd/drbdadm-84; do ldd "$b"; done |
  awk '/=> \//{print $3}' | sort -u | xargs -I{} cp -L {} "$R/usr/lib/x86_64-linux-gnu/"
cp -L /lib64/ld-linux-x86-64.so.2 "$R/usr/lib64/"

# Modules in load order (busybox modprobe ignores soft dependencies; insmod in this order does not).
# dm_mod where the module tree has it (the DRBD 9 tree, copied before it was extracted, may not).
dm=$(modprobe -d "$kdir/root" -S "$kv" --show-depends dm_mod >/dev/null 2>&1 && echo dm_mod || true)
for m in virtio_pci virtio_blk virtio_net crc32c_generic "$drbd_module" $dm; do
  modprobe -d "$kdir/root" -S "$kv" --show-depends "$m"
done | awk '$1 == "insmod" && !seen[$2]++ {print $2}' | while read -r f; do
  rel=${f#"$kdir/root"}
  mkdir -p "$R$(dirname "$rel")"
  cp "$f" "$R$rel"
  echo "$rel" >>"$R/etc/modules-load"
done

cp "$here/init" "$R/init"
chmod +x "$R/init"
mkdir -p "$R/usr/lib/drbd-migrate" && cp "$here/quorum-lost" "$R/usr/lib/drbd-migrate/"
cp "$work"/ssh/host_node-? "$work/ssh/authorized_keys" "$R/etc/ssh/"
chmod 600 "$R"/etc/ssh/host_node-*
cp "$work/drbd.conf" "$R/etc/drbd.conf"
cp "$work/ticker.bin" "$R/ticker.bin"
printf 'root:x:0:0:root:/root:/bin/sh\nsshd:x:100:65534::/run/sshd:/bin/false\n' >"$R/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$R/etc/group"
cat >"$R/etc/ssh/sshd_config" <<'CONF'
Port 22
AuthorizedKeysFile /etc/ssh/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
AllowStreamLocalForwarding yes
PidFile /run/sshd.pid
CONF
(cd "$R" && find . | cpio -o -H newc --quiet | gzip -1) >"$work/initrd.cpio.gz"
