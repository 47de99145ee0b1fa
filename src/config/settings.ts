/**
 * Every setting osstest reads: the single source of defaults and of their documentation.
 * `osstest config show` and standalone.config.example are checked against this table, so a
 * setting added in code without an entry here shows up as undocumented in tests.
 */

export interface Setting {
  /** The name, or for a family a pattern with `<placeholders>`, e.g. `Tree_<tree>`. */
  name: string;
  default?: string;
  /** One or two lines for people. */
  doc: string;
  /** The name is a pattern: many settings share the entry. */
  family?: true;
}

export const SETTINGS: ReadonlyArray<Setting> = [
  // Where state lives.
  {
    name: 'JobDB',
    default: 'Standalone',
    doc: 'Where flights, jobs, steps and hosts are kept: Standalone (a sqlite file, see StandaloneDb) or Executive (PostgreSQL, see ExecutiveDbConnection).',
  },
  {
    name: 'StandaloneDb',
    default: 'standalone.db',
    doc: 'The sqlite database file used when JobDB is Standalone.',
  },
  {
    name: 'ExecutiveDbConnection',
    doc: 'PostgreSQL connection string used when JobDB is Executive, e.g. postgresql://osstest@localhost/osstest.',
  },
  {
    name: 'Logs',
    default: 'logs',
    doc: 'Directory of step logs: <Logs>/<flight>/<job>/<stepno>.<testcase>.log.',
  },
  {
    name: 'Stash',
    default: 'logs',
    doc: 'Directory of job outputs (build tarballs, captured files): <Stash>/<flight>/<job>/.',
  },
  {
    name: 'Results',
    default: 'results',
    doc: 'Directory where reports (HTML pages, email text, JUnit XML) are written.',
  },
  {
    name: 'Images',
    default: 'images',
    doc: 'Directory of installer kernels, initramfs and root filesystem images.',
  },
  { name: 'Repos', default: 'repos', doc: 'Directory of cached git clones of the trees under test.' },
  {
    name: 'TestHostKeypairPath',
    default: '.osstest/id_ed25519',
    doc: 'Private key osstest uses to ssh to test hosts (the public key is the same path plus .pub); standalone-reset creates it.',
  },

  // Test hosts.
  {
    name: 'TestHost',
    doc: 'The host a job uses for its `host` ident, instead of picking a free host by flags.',
  },
  {
    name: 'TestHost_<ident>',
    family: true,
    doc: 'The host a job uses for another ident, e.g. TestHost_src_host and TestHost_dst_host for a pair test.',
  },
  {
    name: 'HostProp_<Prop>',
    family: true,
    doc: 'A property for every host, used when neither HostProp_<host>_<Prop> nor the host database sets it.',
  },
  {
    name: 'HostProp_<host>_<Prop>',
    family: true,
    doc: 'A property of one host; beats the host database. Characters other than letters, digits and _ in the host name are written as _.',
  },
  {
    name: 'HostProp_Workdir',
    default: '/var/tmp/osstest',
    doc: 'Host property: directory on the host where testcases unpack builds and work.',
  },
  {
    name: 'HostProp_Ip',
    doc: 'Host property: address to reach the host at (default: the host database, else its name).',
  },
  { name: 'HostProp_SshPort', doc: 'Host property: ssh port of the host (default: SshPort).' },
  { name: 'HostProp_SshUser', doc: 'Host property: user to log in to the host as (default: SshUser).' },
  {
    name: 'HostFlags',
    doc: 'Flags added to every host (comma or space separated); !flag removes a flag the host database gives.',
  },
  {
    name: 'HostFlags_<host>',
    family: true,
    doc: 'Flags added to (or with !flag removed from) one host; applied after HostFlags.',
  },
  { name: 'SshUser', default: 'root', doc: 'User osstest logs in to test hosts as.' },
  { name: 'SshPort', default: '22', doc: 'Port of sshd on test hosts.' },
  { name: 'SshConnectTimeout', default: '30', doc: 'Seconds to wait for an ssh connection to a host.' },

  // Running jobs.
  {
    name: 'DefaultBranch',
    default: 'demo',
    doc: 'The branch standalone-reset makes its flight for when none is given.',
  },
  {
    name: 'FlightFamily_<branch>',
    family: true,
    doc: 'The flight family (a file in flights/) for a branch whose name does not say it.',
  },
  {
    name: 'StepTimeout',
    default: '3600',
    doc: 'Seconds a step may run before it is killed (unless its recipe says otherwise).',
  },
  {
    name: 'StepTimeout_<testcase>',
    family: true,
    doc: 'Seconds for one testcase, named without ts- and with - and . written as _, e.g. StepTimeout_build for ts-build.',
  },
  {
    name: 'TestcasePath',
    doc: 'Extra colon-separated directories searched for ts-* testcases before the shipped testcases/.',
  },
  {
    name: 'HostAllocateWait',
    default: '0',
    doc: 'Seconds ts-hosts-allocate waits for a host another job holds before the job ends starved; 0 refuses at once (the job is broken). $OSSTEST_HOST_ALLOCATE_WAIT overrides it.',
  },
  {
    name: 'FlightHostWait',
    default: '3600',
    doc: 'Seconds a job run by execute-flight waits for hosts held by other jobs before it ends starved (execute-flight hands it to its jobs as OSSTEST_HOST_ALLOCATE_WAIT).',
  },
  {
    name: 'FlightMaxParallel',
    default: '8',
    doc: 'Most jobs execute-flight runs at once (jobs never share a host; the rest wait their turn).',
  },

  // Lab mode: workers, leases, host health (src/flight/worker.ts, src/db/lab/).
  {
    name: 'HostAllocation',
    default: 'auto',
    doc: 'How ts-hosts-allocate picks hosts: standalone (the first free host with the flags), planner (the lab planner, as workers do), or auto (planner when JobDB is Executive).',
  },
  {
    name: 'WorkerLeaseSeconds',
    default: '30',
    doc: "How long a worker's lease, and those of its jobs and hosts, last unless renewed (it renews every third of it); a worker silent longer is declared gone and its jobs broken.",
  },
  {
    name: 'WorkerGraceSeconds',
    default: '60',
    doc: "Seconds after a dead holder's lease expires before its hosts are released to others (whatever it left running there may still be stopping).",
  },
  {
    name: 'WorkerMaxJobs',
    default: '2',
    doc: 'Most jobs one osstest worker runs at once (--max-jobs overrides it).',
  },
  {
    name: 'WorkerPollSeconds',
    default: '10',
    doc: "Seconds between a worker's looks at the queue when nothing wakes it (PostgreSQL wakes it with NOTIFY; sqlite only polls).",
  },
  {
    name: 'HealthQuarantineAfter',
    default: '3',
    doc: 'A host is quarantined after this many jobs in a row ended broken on it while the same jobs passed on other hosts.',
  },
  {
    name: 'HealthLookbackHours',
    default: '168',
    doc: 'A broken job counts against its host only if the same job passed on another host within this many hours.',
  },
  {
    name: 'HealthCheckInterval',
    default: '600',
    doc: 'Seconds between health checks of a quarantined host (a flight with one health-check job, queued by a worker).',
  },
  {
    name: 'HostProp_HealthCheckRecipe',
    default: 'health-check',
    doc: "Host property: the recipe of a quarantined host's health-check job (set it per host class, e.g. one that installs the host first).",
  },

  // What is tested.
  {
    name: 'Tree_<tree>',
    family: true,
    doc: 'URL (or local path) of the git repository of a source tree, e.g. Tree_demo.',
  },
  {
    name: 'DemoTrees',
    default: 'demo',
    doc: 'Trees the demo flight family builds (each needs a Tree_<tree>).',
  },
  {
    name: 'DemoArchs',
    default: 'amd64',
    doc: 'Architectures the demo flight family makes build and test jobs for.',
  },
  {
    name: 'DemoBuildCommand',
    default: 'make && make install DESTDIR="$OSSTEST_DIST"',
    doc: 'Shell command the demo build job runs on the build host, in the checked-out tree.',
  },
  {
    name: 'DemoTestCommand',
    default: './run-tests',
    doc: 'Shell command the demo test job runs on the test host, in the install prefix ($OSSTEST_INSTALL, its bin/ on PATH); TAP or automake output lines are read as tests.',
  },

  // The push gate (osstest daily-branch). Branch and tree names are written with _ for - and . here.
  {
    name: 'BranchTrees_<branch>',
    family: true,
    doc: 'Trees a branch tests, e.g. `xen linux` (each needs a Tree_<tree>); daily-branch needs it, and the demo family takes it instead of DemoTrees.',
  },
  {
    name: 'TreeUnderTest_<branch>',
    family: true,
    doc: 'The tree whose input ref daily-branch tests and pushes (default: the first of BranchTrees_<branch>); the other trees are tested at their output refs.',
  },
  {
    name: 'TreeInputRef_<tree>',
    family: true,
    doc: 'Branch of Tree_<tree> holding the revisions to test (default staging).',
  },
  {
    name: 'TreeOutputRef_<tree>',
    family: true,
    doc: 'Branch of Tree_<tree> that holds the tested revision and that a tolerable flight is pushed to, as a fast-forward (default master).',
  },
  {
    name: 'BranchAlwaysRun_<branch>',
    family: true,
    doc: 'Set to true to make daily-branch run a flight even when the input ref has not moved since the last tested revision.',
  },
  {
    name: 'BranchHook_<branch>_before',
    family: true,
    doc: 'Shell command daily-branch runs before it makes the flight ($OSSTEST_BRANCH, $OSSTEST_REVISION_<TREE>…); a failure stops the run.',
  },
  {
    name: 'BranchHook_<branch>_after',
    family: true,
    doc: 'Shell command daily-branch runs once the flight is made, before it runs ($OSSTEST_FLIGHT set; it may adjust the flight); a failure stops the run.',
  },
  {
    name: 'GateRetries',
    default: '1',
    doc: 'How many times daily-branch reruns a job whose failure would block the push, on another equivalent host where there is one; a pass makes the failure `pass in N`. 0: never.',
  },
  {
    name: 'GateFlightUsesMirrors',
    default: 'true',
    doc: "Whether daily-branch's flights name the local mirror (<Repos>/<tree>.git) in tree_<t>, for build hosts that share this machine's files; false: the tree's URL.",
  },
  // Reports.
  {
    name: 'AllowDir',
    default: '.',
    doc: 'Directory of the allow files (allow.<branch>, allow.all) listing failures that may block no push.',
  },
  {
    name: 'ReportFrom',
    default: 'osstest@localhost',
    doc: 'From address of report emails (report-flight --send, --email).',
  },
  {
    name: 'ReportTo',
    doc: 'Recipients of report emails, comma separated; report-flight --send needs it.',
  },
  {
    name: 'SmtpHost',
    default: 'localhost',
    doc: 'SMTP server report emails are sent through (STARTTLS is used when the server offers it).',
  },
  { name: 'SmtpPort', default: '25', doc: 'Port of the SMTP server report emails are sent through.' },

  // The web UI (osstest serve).
  {
    name: 'WebListen',
    default: '127.0.0.1',
    doc: 'Address osstest serve listens on for its web UI (reports, logs, live flights); --listen overrides it.',
  },
  { name: 'WebPort', default: '8037', doc: 'Port of the web UI of osstest serve; --port overrides it.' },

  {
    name: 'DemoPairTest',
    doc: 'Set to true to add a demo test job on two hosts of one equivalence class (test-<arch>-<arch>-demo-pair).',
  },

  // Provisioning: boot files, webspace, installs.
  {
    name: 'BootServices',
    default: 'builtin',
    doc: "Who answers the hosts' DHCP and TFTP: builtin (osstest's own servers), dnsmasq (osstest runs DnsmasqBinary, configured from the host database) or external (the site's servers: osstest writes boot files into TftpPath and reads DhcpLeasesFile).",
  },
  {
    name: 'DnsmasqBinary',
    default: '/usr/sbin/dnsmasq',
    doc: 'The dnsmasq program run with BootServices dnsmasq (Debian: dnsmasq-base).',
  },
  {
    name: 'DhcpLeasesFile',
    doc: "With BootServices external: the site's DHCP lease file (ISC dhcpd's dhcpd.leases or dnsmasq's, told apart by content), read to learn which address a MAC got.",
  },
  {
    name: 'TftpPath',
    default: 'tftp',
    doc: 'Root directory the TFTP server serves (pxelinux.0, its configs, boot files).',
  },
  {
    name: 'TftpPxeDir',
    default: 'pxelinux.cfg',
    doc: "Directory under TftpPath of the hosts' pxelinux config files.",
  },
  {
    name: 'TftpPxeTemplates',
    default: '01-%etherhyph% %ipaddrhex%',
    doc: "Names of a host's pxelinux config file; the first whose %var%s are known is written (%etherhyph%, %ipaddrhex%, %ether%, %name%).",
  },
  {
    name: 'PxeTemplates',
    doc: 'Directory of the boot config templates (pxelinux.tmpl, ipxe.tmpl and their -local forms); default the shipped config/pxe.',
  },
  {
    name: 'WebspaceDir',
    default: 'webspace',
    doc: 'Directory of the files hosts fetch over HTTP while booting and installing: <WebspaceDir>/<host>/.',
  },
  {
    name: 'WebspaceUrl',
    doc: "URL hosts reach the webspace at (by IPv4 address); default the virtual lab's, http://<LabSubnet .1>:<LabHttpPort>/.",
  },
  {
    name: 'ImagesKernelPackage',
    doc: "Debian package `images update` takes the hosts' kernel from (default linux-image-<arch>).",
  },
  {
    name: 'ImagesRootfsSuite',
    doc: 'Debian suite of the root filesystem the `image` install method writes (default bookworm).',
  },
  {
    name: 'ImagesRootfsPackages',
    doc: 'Packages debootstrap adds to that root filesystem (default linux-image-cloud-amd64 systemd-sysv udev openssh-server).',
  },
  {
    name: 'ImagesRootfsMirror',
    doc: "Debian mirror debootstrap fetches from (default the first Debian mirror in apt's sources).",
  },
  {
    name: 'HostInstallFetchTimeout',
    default: '300',
    doc: 'Seconds from power-on until a host being installed must have fetched its boot files.',
  },
  {
    name: 'HostInstallTimeout',
    default: '900',
    doc: 'Seconds from power-on until a host being installed must answer ssh.',
  },
  {
    name: 'HostRebootTimeout',
    default: '600',
    doc: 'Seconds a host may take to go down and come back up with ssh (ts-host-reboot, ts-host-powercycle).',
  },

  // The virtual lab.
  {
    name: 'LabDir',
    default: 'lab',
    doc: "Directory of the virtual lab's state: VM definitions and serial logs, services log, leases.",
  },
  { name: 'LabNamespace', default: 'osstest-lab', doc: "Name of the virtual lab's network namespace." },
  {
    name: 'LabSubnet',
    default: '10.215.0.0/24',
    doc: "The lab's network (exists only inside its namespace): .1 the boot services, .10+ QEMU hosts, .100+ build hosts.",
  },
  {
    name: 'LabLinkNet',
    default: '10.215.255.0/30',
    doc: "The /30 joining the root namespace (.1) to the lab's (.2); LabSubnet is routed through it.",
  },
  {
    name: 'LabQemuHosts',
    default: '2',
    doc: 'Number of QEMU test hosts lab up defines (<LabHostPrefix>-q0, -q1, …).',
  },
  {
    name: 'LabBuildHosts',
    default: '1',
    doc: 'Number of netns build hosts lab up makes (<LabHostPrefix>-b0, …).',
  },
  { name: 'LabHostPrefix', default: 'lab', doc: 'Prefix of the names of the lab hosts.' },
  {
    name: 'LabQemuAccel',
    default: 'tcg',
    doc: 'QEMU accelerator of the lab VMs: tcg (software emulation, works anywhere) or kvm (needs /dev/kvm).',
  },
  { name: 'LabQemuMemory', default: '256', doc: 'Memory of each lab VM, in MB.' },
  {
    name: 'LabQemuNic',
    default: 'e1000',
    doc: "NIC model of the lab VMs: e1000 (Debian's generic kernel has it as one module) or virtio (virtio-net; what Debian's cloud kernel, which the image install method's root filesystem has, drives).",
  },
  {
    name: 'LabQemuDisk',
    default: '4G',
    doc: "Size of each lab VM's virtio disk (a qcow2 file made afresh by lab up, for the image install method); 0 for none.",
  },
  {
    name: 'LabHttpPort',
    default: '80',
    doc: "Port of the lab's web server (the webspace) on the lab bridge.",
  },
  { name: 'QemuBinary', default: 'qemu-system-x86_64', doc: 'QEMU program the lab VMs run.' },
];

/** The table entry that documents a name: its own entry, else the most specific family it belongs to. */
export function settingFor(name: string): Setting | undefined {
  const exact = SETTINGS.find((s) => !s.family && s.name === name);
  if (exact) return exact;
  let best: Setting | undefined;
  for (const s of SETTINGS) {
    if (!s.family || !familyPattern(s.name).test(name)) continue;
    // More fixed text = more specific: HostProp_<host>_<Prop> beats HostProp_<Prop>.
    if (!best || fixedLength(s.name) > fixedLength(best.name)) best = s;
  }
  return best;
}

function familyPattern(pattern: string): RegExp {
  const parts = pattern.split(/<[^>]*>/);
  return new RegExp(`^${parts.map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('[A-Za-z0-9_]+')}$`);
}

function fixedLength(pattern: string): number {
  return pattern.replace(/<[^>]*>/g, '').length;
}
