#!/usr/bin/env bash
# Build a tiny bootable test guest for libvirt/QEMU driver tests, from Debian packages only.
#
#   bash guest-build.sh            # -> work/guest/{vmlinuz,initrd.img}
#   WITH_ISO=1 bash guest-build.sh # also a BIOS-bootable ISO-hybrid disk + qcow2 base
#
# Idempotent: downloaded .debs are kept in $OUT/dl and reused; the initramfs (and ISO) are rebuilt.
# Needs: apt lists (apt-get update done once), dpkg-deb, gzip. WITH_ISO=1 also needs xorriso, isolinux,
# syslinux-common (installed here with --no-install-recommends if missing) and qemu-img.
#
# The guest: Debian's stock kernel (linux-image-amd64) + a busybox-static initramfs whose /init
#   - prints "NOVA-RS GUEST BOOTED uptime=<s>" to ttyS0 (serial) and tty1 (VGA text console);
#   - powers off (poweroff -f) when the ACPI power button is pressed (virsh shutdown / virDomainShutdown);
#   - runs a shell on ttyS0 (usable with a pty serial + `virsh console`) and on tty1 (usable over VNC);
#   - if a virtio disk is present: mounts it read-only as iso9660 when it is the ISO and prints the
#     disk's marker file, and, if the disk is bigger than 64 MiB, writes "NOVA-RS OVERLAY WRITE" into
#     its last MiB (to check that writes land in a qcow2 overlay, not in the base);
#   - if a NIC is present (virtio_net): brings eth0 up and runs busybox udhcpc in the background; on
#     a lease it configures the address, MTU and routes (router or classless static routes), prints
#     "NOVA-RS NET eth0 ip=<a>/<len> router=<r> mtu=<m>", then fetches the metadata service at
#     169.254.169.254 once and prints "NOVA-RS METADATA uuid=<uuid from meta_data.json>" (answers ping
#     from then on);
#   - kernel cmdline option novars.heartbeat=N prints "NOVA-RS GUEST ALIVE uptime=<s>" every N seconds.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-$HERE/work/guest}
WITH_ISO=${WITH_ISO:-0}
mkdir -p "$OUT/dl"
cd "$OUT"

# 1. Debian packages: the real kernel image package behind the linux-image-amd64 metapackage, and busybox.
KPKG=${KPKG:-$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')}
[ -n "$KPKG" ] || { echo "cannot resolve linux-image-amd64 (run apt-get update first)" >&2; exit 1; }
for p in "$KPKG" busybox-static; do
  if ! ls dl/"${p}"_*.deb >/dev/null 2>&1; then
    (cd dl && apt-get -q -o APT::Sandbox::User=root download "$p")
  fi
done
KDEB=$(ls dl/"${KPKG}"_*.deb | head -1)
BDEB=$(ls dl/busybox-static_*.deb | head -1)

# 2. Kernel and the few modules the guest loads (Debian builds virtio, ACPI button, evdev, isofs as modules).
MODS="drivers/virtio/virtio_ring.ko drivers/virtio/virtio.ko drivers/virtio/virtio_pci_modern_dev.ko
drivers/virtio/virtio_pci_legacy_dev.ko drivers/virtio/virtio_pci.ko drivers/block/virtio_blk.ko
drivers/acpi/button.ko drivers/input/evdev.ko drivers/cdrom/cdrom.ko fs/isofs/isofs.ko
net/core/failover.ko drivers/net/net_failover.ko drivers/net/virtio_net.ko"
rm -rf kx && mkdir kx
pats=("./boot/vmlinuz-*")
for m in $MODS; do pats+=("./lib/modules/*/kernel/$m"); done
dpkg-deb --fsys-tarfile "$KDEB" | tar -x -C kx --wildcards "${pats[@]}"
cp kx/boot/vmlinuz-* vmlinuz
KVER=$(basename kx/boot/vmlinuz-* | sed 's/^vmlinuz-//')

# 3. initramfs: busybox + /init + modules, packed with busybox's own cpio (no host cpio needed).
rm -rf rootfs && mkdir -p rootfs/{bin,sbin,dev,proc,sys,tmp,mnt,etc,lib/modules}
dpkg-deb --fsys-tarfile "$BDEB" | tar -xO ./bin/busybox > rootfs/bin/busybox
chmod 755 rootfs/bin/busybox
BB=$OUT/rootfs/bin/busybox
for m in $MODS; do cp kx/lib/modules/"$KVER"/kernel/"$m" rootfs/lib/modules/; done
cat > rootfs/init <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
up() { cut -d' ' -f1 /proc/uptime; }
say() { for t in /dev/ttyS0 /dev/tty1; do [ -c "$t" ] && echo "$*" > "$t" 2>/dev/null; done; }
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk button evdev cdrom isofs failover net_failover virtio_net; do
  insmod /lib/modules/$m.ko 2>/dev/null
done
say "NOVA-RS GUEST BOOTED uptime=$(up) kernel=$(uname -r)"
# ACPI power button (virsh shutdown) -> clean power off
for ev in /sys/class/input/event*; do
  [ -e "$ev/device/name" ] || continue
  if [ "$(cat $ev/device/name)" = "Power Button" ]; then
    ( head -c 24 /dev/input/${ev##*/} >/dev/null; say "NOVA-RS GUEST POWEROFF uptime=$(up)"; sync; poweroff -f ) &
  fi
done
# virtio disk: read a marker from the ISO, write one into the last MiB when the disk is big enough
if [ -b /dev/vda ]; then
  sectors=$(cat /sys/block/vda/size)
  say "NOVA-RS DISK vda sectors=$sectors"
  if mount -t iso9660 -o ro /dev/vda /mnt 2>/dev/null; then
    [ -f /mnt/nova-rs-disk.txt ] && say "NOVA-RS DISK MARKER $(cat /mnt/nova-rs-disk.txt)"
    umount /mnt
  fi
  if [ "$sectors" -gt 131072 ]; then
    echo "NOVA-RS OVERLAY WRITE uptime=$(up)" | dd of=/dev/vda bs=512 seek=$((sectors - 2048)) conv=fsync 2>/dev/null \
      && say "NOVA-RS DISK WROTE at sector $((sectors - 2048))"
  fi
fi
# NIC: DHCP in the background (the lease hook configures eth0 and fetches metadata once)
ip link set lo up 2>/dev/null
if [ -e /sys/class/net/eth0 ]; then
  ip link set eth0 up
  udhcpc -f -i eth0 -s /etc/udhcpc.script -T 2 -t 5 -A 3 >/dev/null 2>&1 &
fi
hb=$(sed -n 's/.*novars\.heartbeat=\([0-9]*\).*/\1/p' /proc/cmdline)
if [ -n "$hb" ]; then ( while sleep "$hb"; do say "NOVA-RS GUEST ALIVE uptime=$(up)"; done ) & fi
# shells on the serial port and the VGA console; respawned
( while true; do setsid -c sh -c 'exec sh -i' </dev/ttyS0 >/dev/ttyS0 2>&1; sleep 1; done ) &
( while true; do setsid -c sh -c 'exec sh -i' </dev/tty1 >/dev/tty1 2>&1; sleep 1; done ) &
while true; do sleep 3600; done
INIT
chmod 755 rootfs/init
cat > rootfs/etc/udhcpc.script <<'DHCP'
#!/bin/sh
# busybox udhcpc hook: $1 = deconfig | bound | renew | nak; the lease in $ip $mask $router $mtu $staticroutes
say() { for t in /dev/ttyS0 /dev/tty1; do [ -c "$t" ] && echo "$*" > "$t" 2>/dev/null; done; }
case "$1" in
  deconfig)
    ip -4 addr flush dev "$interface"
    ip link set "$interface" up
    ;;
  bound|renew)
    [ -n "$mtu" ] && ip link set "$interface" mtu "$mtu"
    ip -4 addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    [ -n "$hostname" ] && hostname "$hostname"
    if [ -n "$staticroutes" ]; then
      set -- $staticroutes
      while [ $# -ge 2 ]; do
        if [ "$2" = 0.0.0.0 ]; then ip route add "$1" dev "$interface"; else ip route add "$1" via "$2" dev "$interface"; fi
        shift 2
      done
    elif [ -n "$router" ]; then
      for r in $router; do ip route add default via "$r" dev "$interface" && break; done
    fi
    say "NOVA-RS NET $interface ip=$ip/$mask router=$router mtu=$mtu"
    if [ ! -e /tmp/metadata-fetched ]; then
      : > /tmp/metadata-fetched
      (
        for _ in 1 2 3 4 5 6 7 8 9 10; do
          md=$(timeout 10 wget -q -O - http://169.254.169.254/openstack/latest/meta_data.json 2>/dev/null) && break  # (busybox 1.35 wget -T crashes)
          sleep 2
        done
        uuid=$(echo "$md" | tr ',' '\n' | sed -n 's/.*"uuid": *"\([^"]*\)".*/\1/p' | head -1)
        say "NOVA-RS METADATA uuid=${uuid:-none}"
      ) &
    fi
    ;;
esac
DHCP
chmod 755 rootfs/etc/udhcpc.script
(cd rootfs && find . | LC_ALL=C sort | "$BB" cpio -o -H newc -R 0:0 2>/dev/null) | gzip -9 -n > initrd.img.tmp
mv initrd.img.tmp initrd.img
rm -rf kx
# What this guest can do, one word a line (scripts/libvirt-setup rebuilds a guest that lacks one it needs).
printf 'nic-dhcp\nmetadata\n' > features
echo "kernel:  $OUT/vmlinuz ($KVER, $(stat -c %s vmlinuz) bytes)"
echo "initrd:  $OUT/initrd.img ($(stat -c %s initrd.img) bytes)"

# 4. Optional: BIOS-bootable ISO-hybrid (isolinux) with the same kernel/initrd, and a qcow2 base of it.
if [ "$WITH_ISO" = 1 ]; then
  need=""
  command -v xorriso >/dev/null || need="$need xorriso"
  [ -f /usr/lib/ISOLINUX/isolinux.bin ] || need="$need isolinux"
  [ -f /usr/lib/syslinux/modules/bios/ldlinux.c32 ] || need="$need syslinux-common"
  [ -z "$need" ] || apt-get install -y -q --no-install-recommends $need
  rm -rf iso_root && mkdir -p iso_root/isolinux iso_root/boot
  cp /usr/lib/ISOLINUX/isolinux.bin /usr/lib/syslinux/modules/bios/ldlinux.c32 iso_root/isolinux/
  cp vmlinuz initrd.img iso_root/boot/
  echo "disk image built $(date -u +%Y-%m-%dT%H:%M:%SZ)" > iso_root/nova-rs-disk.txt
  cat > iso_root/isolinux/isolinux.cfg <<'CFG'
SERIAL 0 115200
DEFAULT nova
PROMPT 0
TIMEOUT 0
LABEL nova
  KERNEL /boot/vmlinuz
  INITRD /boot/initrd.img
  APPEND console=tty0 console=ttyS0,115200
CFG
  xorriso -as mkisofs -quiet -o nova-rs-guest.iso -V NOVARS \
    -isohybrid-mbr /usr/lib/ISOLINUX/isohdpfx.bin \
    -c isolinux/boot.cat -b isolinux/isolinux.bin -no-emul-boot -boot-load-size 4 -boot-info-table \
    iso_root
  rm -f base.qcow2 && qemu-img convert -q -f raw -O qcow2 nova-rs-guest.iso base.qcow2
  echo "iso:     $OUT/nova-rs-guest.iso ($(stat -c %s nova-rs-guest.iso) bytes)"
  echo "qcow2:   $OUT/base.qcow2 (base for overlays: qemu-img create -f qcow2 -F qcow2 -b base.qcow2 x.qcow2 128M)"
fi
