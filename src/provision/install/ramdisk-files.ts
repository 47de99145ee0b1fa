/**
 * The scripts inside the ramdisk. /init mounts the kernel filesystems, installs busybox's applets and
 * hands over to busybox init (so `reboot` over ssh reboots properly); init runs rcS, which loads the NIC
 * driver, gets an address by DHCP, reports `booted` to the controller's webspace, starts dropbear with
 * the host key the controller made for this host, reports `ssh-ready` and writes the boot-complete
 * marker. Every step says what it does on the console (the serial log).
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
hostname "$OSSTEST_HOST"
mkdir -p /dev/pts /var/log /root
mount -t devpts -o mode=620,ptmxmode=666 devpts /dev/pts
ip link set lo up
for m in $(cat /etc/osstest/modules); do
  insmod "/lib/modules/$m" || say "insmod $m failed"
done
IF=
n=0
while [ -z "$IF" ] && [ "$n" -lt 100 ]; do
  for d in /sys/class/net/*; do
    [ "$(cat "$d/address" 2>/dev/null)" = "$OSSTEST_MAC" ] && IF=\${d##*/}
  done
  [ -n "$IF" ] || { sleep 0.1; n=$((n + 1)); }
done
if [ -z "$IF" ]; then
  say "no interface with MAC $OSSTEST_MAC (have: $(ls /sys/class/net | tr '\\n' ' '))"
  exit 1
fi
ip link set "$IF" up
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
