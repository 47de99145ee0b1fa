/**
 * The scripts inside the ramdisk. /init mounts the kernel filesystems, installs busybox's applets and
 * hands over to busybox init (so `reboot` over ssh reboots properly); init runs rcS, which loads the NIC
 * driver, gets an address by DHCP, reports `booted` to the controller's webspace, starts dropbear with
 * the host key the controller made for this host, reports `ssh-ready` and writes the boot-complete
 * marker. Every step says what it does on the console (the serial log).
 *
 * rcS is ordered for boot time, which a ramdisk install is mostly made of: the NIC's link needs seconds
 * after `ip link set up` (e1000 under QEMU: about 2 s, until the driver's next watchdog run), so the
 * interface goes up as soon as its driver has made it, the rest of the set-up runs while the link comes
 * up, and DHCP starts only once there is a carrier (a request sent before is lost, and udhcpc would sit
 * out its whole retry timeout).
 *
 * The per-host settings come from /etc/osstest/host.conf, which is in the host's own small overlay
 * archive (loaded after the shared one), so the shared image is the same for every host.
 */

export const INIT = `#!/bin/busybox sh
# osstest ramdisk: the first process. Mount what busybox needs, then become busybox init.
/bin/busybox mkdir -p /proc /sys /dev /run /tmp
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev
/bin/busybox --install -s
exec /sbin/init
`;

export const INITTAB = `# busybox init's table for the osstest ramdisk
::sysinit:/etc/osstest/rcS
::ctrlaltdel:/sbin/reboot
::shutdown:/etc/osstest/shutdown
::restart:/sbin/init
`;

export const SHUTDOWN = `#!/bin/sh
echo "osstest-ramdisk: shutting down" > /dev/console
[ -f /run/dropbear.pid ] && kill "$(cat /run/dropbear.pid)" 2>/dev/null
exit 0
`;

export const RCS = `#!/bin/sh
# osstest ramdisk: bring the host up and tell the controller how far it got.
. /etc/osstest/host.conf
say() { echo "osstest-ramdisk: $*" > /dev/console; }
# busybox's own nc, not wget: the static busybox's wget looks up the "http" service through glibc's
# NSS, which a static binary cannot load (it crashes).
report() {
  status=$(printf 'GET %s/%s HTTP/1.0\\r\\nHost: %s\\r\\nUser-Agent: osstest-ramdisk\\r\\n\\r\\n' \\
      "$OSSTEST_PROGRESS_PATH" "$1" "$OSSTEST_PROGRESS_ADDR" |
    nc -w 5 "$OSSTEST_PROGRESS_ADDR" "$OSSTEST_PROGRESS_PORT" | head -n 1)
  case "$status" in
    *" 200 "*) ;;
    *) say "could not report $1 to $OSSTEST_PROGRESS_ADDR:$OSSTEST_PROGRESS_PORT ($status)" ;;
  esac
}
say "host $OSSTEST_HOST, kernel $(uname -r)"
# The EUI-64 IPv6 link-local address of MAC $1 (the MAC with ff:fe in its middle and bit 1 of its
# first byte flipped, after fe80::): the one the kernel gives an interface by default.
link_local() {
  local IFS=:
  set -- $1
  printf 'fe80::%x:%x:%x:%x' $(((0x$1 ^ 2) << 8 | 0x$2)) $((0x$3 << 8 | 0xff)) $((0xfe00 | 0x$4)) \\
    $((0x$5 << 8 | 0x$6))
}
# The interface with our MAC, brought up as soon as it exists (its link takes seconds to come up).
# Shell builtins where it loops: each fork and exec costs tens of milliseconds under emulation.
# Its link-local address is given before the link is up, not by the kernel once it is: adding it joins
# a multicast group, so the driver rewrites the NIC's receive control register, and QEMU's e1000 then
# holds every received frame for 1 s, which would be the DHCP server's first answer. Given now, that
# second passes while the link is still down; on other NICs it is the same address as ever.
IF=
find_if() {
  for d in /sys/class/net/*; do
    a=
    { read -r a < "$d/address"; } 2>/dev/null
    [ "$a" = "$OSSTEST_MAC" ] || continue
    IF=\${d##*/}
    ip -6 addr add "$(link_local "$OSSTEST_MAC")/64" dev "$IF" 2>/dev/null
    ip link set "$IF" up
    return 0
  done
  return 1
}
# The list has the NIC's modules (RamdiskModules) first: the rest, such as the image method's disk and
# filesystem drivers, load while the link comes up.
for m in $(cat /etc/osstest/modules); do
  insmod "/lib/modules/$m" || say "insmod $m failed"
  [ -n "$IF" ] || find_if
done
n=0
while [ -z "$IF" ] && [ "$n" -lt 100 ]; do
  find_if || { sleep 0.1; n=$((n + 1)); }
done
if [ -z "$IF" ]; then
  say "no interface with MAC $OSSTEST_MAC (have: $(ls /sys/class/net | tr '\\n' ' '))"
  exit 1
fi
# dropbear's first connection blocks in getrandom() until the kernel's random number generator is
# initialised. Without a CPU random instruction (QEMU's default CPU under TCG has none) that waits for
# the kernel to gather jitter entropy, which it starts only once someone blocks on it: about 1 s under
# TCG. A blocking read starts it now, while the link comes up, not when the controller connects.
head -c 1 /dev/random > /dev/null &
hostname "$OSSTEST_HOST"
mkdir -p /dev/pts /var/log /root
mount -t devpts -o mode=620,ptmxmode=666 devpts /dev/pts
ip link set lo up
# Up to 10 s for a carrier; without one, udhcpc tries anyway (and keeps retrying).
n=0
c=
while [ "$n" -lt 100 ]; do
  { read -r c < "/sys/class/net/$IF/carrier"; } 2>/dev/null
  [ "$c" = 1 ] && break
  sleep 0.1
  n=$((n + 1))
done
if [ "$c" = 1 ]; then say "link up on $IF"; else say "no carrier on $IF after 10 s, trying DHCP anyway"; fi
if ! udhcpc -i "$IF" -s /etc/osstest/udhcpc.script -t 30 -T 2 -A 2 -n -p /run/udhcpc.pid -x "hostname:$OSSTEST_HOST"; then
  say "no DHCP lease on $IF"
  exit 1
fi
say "network up: $(ip -4 -o addr show dev "$IF" | awk '{print $2, $4}')"
report booted
if dropbear -r /etc/dropbear/dropbear_ed25519_host_key -p 22 -s -P /run/dropbear.pid; then
  say "dropbear listening on port 22"
  report ssh-ready
else
  say "dropbear did not start"
  report ssh-failed
  exit 1
fi
cat /proc/sys/kernel/random/boot_id > /run/osstest-boot-complete
say "boot complete"
`;

export const UDHCPC_SCRIPT = `#!/bin/sh
# udhcpc's hook: apply the lease (busybox passes it in the environment).
case "$1" in
  deconfig)
    ip -4 addr flush dev "$interface"
    ip link set "$interface" up
    ;;
  bound)
    ip -4 addr flush dev "$interface"
    ip addr add "$ip/\${mask:-24}" dev "$interface"
    [ -n "$router" ] && ip route replace default via "\${router%% *}" dev "$interface"
    ;;
  renew)
    ip addr replace "$ip/\${mask:-24}" dev "$interface"
    [ -n "$router" ] && ip route replace default via "\${router%% *}" dev "$interface"
    ;;
esac
exit 0
`;

export const PASSWD = 'root:x:0:0:root:/root:/bin/sh\n';
export const GROUP = 'root:x:0:\n';
export const SHELLS = '/bin/sh\n';

/** `'…'` for sh, safe for any text without NUL. */
export function shellQuote(v: string): string {
  return `'${v.replace(/'/g, `'\\''`)}'`;
}

/**
 * The host's settings. The progress URL must name the server by IPv4 address (the ramdisk has no
 * resolver) over plain http.
 */
export function hostConf(o: { host: string; mac: string; progressUrl: string }): string {
  let u: URL;
  try {
    u = new URL(o.progressUrl);
  } catch {
    throw new Error(`ramdisk: progress URL ${JSON.stringify(o.progressUrl)} is not a URL`);
  }
  if (u.protocol !== 'http:' || !/^\d+\.\d+\.\d+\.\d+$/.test(u.hostname)) {
    throw new Error(`ramdisk: progress URL ${o.progressUrl} must be http:// with an IPv4 address`);
  }
  return [
    '# written by the osstest controller for this install',
    `OSSTEST_HOST=${shellQuote(o.host)}`,
    `OSSTEST_MAC=${shellQuote(o.mac.toLowerCase())}`,
    `OSSTEST_PROGRESS_ADDR=${shellQuote(u.hostname)}`,
    `OSSTEST_PROGRESS_PORT=${shellQuote(u.port || '80')}`,
    `OSSTEST_PROGRESS_PATH=${shellQuote(u.pathname.replace(/\/+$/, ''))}`,
    '',
  ].join('\n');
}
