#!/usr/bin/env bash
# Builds the boot lab's images (boot-lab.md §2) from Debian's packages and the lab agent:
#   vmlinuz          Debian's cloud kernel
#   netboot.cpio.gz  static busybox + virtio modules + the agent; /init brings up the network and
#                    runs the agent (netboot, wipe or disk mode, chosen by the kernel command line)
#   rescue.cpio.gz   busybox only; /init says it is the rescue system and idles
#   disk.img         what the agent installs: MBR, partition 1 FAT (type ef, active) with SYSLINUX
#                    (BIOS) and EFI/BOOT/BOOTX64.EFI, a UKI (UEFI), both booting the kernel with
#                    netboot.cpio.gz and metalbox.boot=disk-bios|disk-uefi; partition 2 (type da)
#                    the agent's install record
# No loop devices or mounts: mtools, `syslinux --install` on the partition image, sfdisk on the file.
# Usage: build-images.sh <lab-agent binary> <output dir>
set -euo pipefail

agent=$1
out=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

kernel=$(ls /boot/vmlinuz-*-cloud-amd64 | sort -V | tail -n1)
kver=${kernel#/boot/vmlinuz-}
mods=/lib/modules/$kver
[[ -r $kernel && -d $mods ]] || { echo "build-images: no cloud kernel in /boot (linux-image-cloud-amd64)" >&2; exit 1; }
mkdir -p "$out"
cp "$kernel" "$out/vmlinuz"

# --- initramfs roots -----------------------------------------------------------------------
# virtio_net, virtio_blk and virtio_pci are modules in the cloud kernel. Each is loaded after its
# dependencies (modules.dep lists them dependants-first, so read each line backwards).
MODULES=""
for want in virtio_pci virtio_net virtio_blk; do
  line=$(grep -E "/$want\.ko(\.[a-z]+)?:" "$mods/modules.dep") || { echo "build-images: $want not in $mods/modules.dep" >&2; exit 1; }
  deps=(${line#*:})
  for ((i = ${#deps[@]} - 1; i >= -1; i--)); do
    path=${line%%:*}
    ((i >= 0)) && path=${deps[i]}
    case $path in *.ko) ;; *) echo "build-images: compressed module $path is not supported" >&2; exit 1 ;; esac
    name=$(basename "$path" .ko)
    [[ " $MODULES " == *" $name "* ]] || MODULES="$MODULES $name"
  done
done
MODULES=${MODULES# }

make_root() {
  local root=$1
  mkdir -p "$root"/{bin,dev,proc,sys,tmp,lib/modules,usr/share/udhcpc}
  cp /bin/busybox "$root/bin/busybox"
}

netboot=$work/netboot
make_root "$netboot"
for m in $MODULES; do
  cp "$mods/$(grep -oE "[^ :]*/$m\.ko:" "$mods/modules.dep" | tr -d :)" "$netboot/lib/modules/"
done
install -m 0755 "$agent" "$netboot/bin/lab-agent"

cat >"$netboot/usr/share/udhcpc/default.script" <<'EOF'
#!/bin/busybox sh
# udhcpc's hook: configure the lease on the interface (no DNS: the lab uses addresses).
case "$1" in
  deconfig) ip addr flush dev "$interface"; ip link set "$interface" up ;;
  bound | renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    if [ -n "$router" ]; then ip route add default via "${router%% *}" dev "$interface"; fi
    ;;
esac
EOF
chmod 0755 "$netboot/usr/share/udhcpc/default.script"

cat >"$netboot/init" <<EOF
#!/bin/busybox sh
# SIMULATED Talos (metalbox lab agent): mount the pseudo file systems, load virtio, DHCP, run the agent.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $MODULES; do insmod /lib/modules/\$m.ko 2>&1 | sed "s/^/[SIMULATED Talos (metalbox lab agent)] init: insmod \$m: /"; done
ip link set lo up
echo "[SIMULATED Talos (metalbox lab agent)] init: virtio loaded, DHCP on eth0"
i=0; while [ ! -e /sys/class/net/eth0 ] && [ \$i -lt 100 ]; do sleep 0.1; i=\$((i + 1)); done
udhcpc -i eth0 -t 20 -T 2 -n -q -s /usr/share/udhcpc/default.script 2>&1 | sed 's/^/[SIMULATED Talos (metalbox lab agent)] udhcpc: /'
exec /bin/lab-agent
EOF
chmod 0755 "$netboot/init"

rescue=$work/rescue
make_root "$rescue"
cat >"$rescue/init" <<'EOF'
#!/bin/busybox sh
# The lab's rescue system: says so and idles.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
echo "[SIMULATED Talos (metalbox lab agent)] RESCUE-INIT: SIMULATED rescue system booted ($(cat /proc/uptime | cut -d' ' -f1)s after kernel start)"
# Only metalbox's own arguments: the rest may carry URLs with tokens.
echo "[SIMULATED Talos (metalbox lab agent)] RESCUE-INIT: $(tr ' ' '\n' </proc/cmdline | grep '^metalbox\.' | tr '\n' ' ')"
while :; do sleep 3600; done
EOF
chmod 0755 "$rescue/init"

pack() { (cd "$1" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -9n >"$2"; }
pack "$netboot" "$out/netboot.cpio.gz"
pack "$rescue" "$out/rescue.cpio.gz"

# --- disk.img ------------------------------------------------------------------------------
# UKI: systemd-boot's stub with .osrel, .cmdline, .linux and .initrd sections appended after the
# stub's own sections, each at the next SectionAlignment boundary.
stub=/usr/lib/systemd/boot/efi/linuxx64.efi.stub
printf 'NAME="SIMULATED Talos (metalbox lab agent)"\nID=metalbox-lab\n' >"$work/os-release"
printf 'console=ttyS0 quiet metalbox.boot=disk-uefi' >"$work/cmdline-uefi"
align=$((16#$(objdump -p "$stub" | awk '$1 == "SectionAlignment" { print $2 }')))
end=0
while read -r size vma; do
  ((16#$size + 16#$vma > end)) && end=$((16#$size + 16#$vma))
done < <(objdump -h "$stub" | awk 'NF == 7 && $1 ~ /^[0-9]+$/ { print $3, $4 }')
sections=()
for pair in .osrel:"$work/os-release" .cmdline:"$work/cmdline-uefi" .linux:"$kernel" .initrd:"$out/netboot.cpio.gz"; do
  name=${pair%%:*} file=${pair#*:}
  vma=$(((end + align - 1) / align * align))
  sections+=(--add-section "$name=$file" --change-section-vma "$name=$(printf '0x%x' "$vma")")
  end=$((vma + $(stat -Lc %s "$file")))
done
objcopy "${sections[@]}" "$stub" "$work/BOOTX64.EFI"

cat >"$work/syslinux.cfg" <<'EOF'
SERIAL 0 115200
DEFAULT metalbox
PROMPT 0
TIMEOUT 0
LABEL metalbox
  KERNEL /vmlinuz
  INITRD /initrd.gz
  APPEND console=ttyS0 quiet metalbox.boot=disk-bios
EOF

# Partition 1 sized to its files plus slack; partition 2 is the 1 MiB record.
MiB=$((1024 * 1024))
payload=$(($(stat -Lc %s "$kernel") + $(stat -Lc %s "$out/netboot.cpio.gz") + $(stat -Lc %s "$work/BOOTX64.EFI")))
p1_mib=$(((payload + MiB - 1) / MiB + 4))
((p1_mib < 20)) && p1_mib=20
p1=$work/p1.img
truncate -s $((p1_mib * MiB)) "$p1"
mkfs.fat -F 16 -n METALBOX "$p1" >/dev/null
mmd -i "$p1" ::/EFI ::/EFI/BOOT
mcopy -i "$p1" "$kernel" ::/vmlinuz
mcopy -i "$p1" "$out/netboot.cpio.gz" ::/initrd.gz
mcopy -i "$p1" "$work/syslinux.cfg" ::/syslinux.cfg
mcopy -i "$p1" "$work/BOOTX64.EFI" ::/EFI/BOOT/BOOTX64.EFI
syslinux --install "$p1"

disk=$work/disk.img
truncate -s $(((1 + p1_mib + 1) * MiB)) "$disk"
sfdisk -q "$disk" <<EOF
label: dos
start=2048, size=$((p1_mib * 2048)), type=ef, bootable
start=$(((1 + p1_mib) * 2048)), size=2048, type=da
EOF
dd if=/usr/lib/syslinux/mbr/mbr.bin of="$disk" bs=440 count=1 conv=notrunc status=none
dd if="$p1" of="$disk" bs=1M seek=1 conv=notrunc status=none
mv "$disk" "$out/disk.img"
echo "build-images: $(cd "$out" && ls -s --block-size=K vmlinuz netboot.cpio.gz rescue.cpio.gz disk.img | tr '\n' ' ')(kernel $kver)"
