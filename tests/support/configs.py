"""Synthetic kernel configs: every version gate of lxc-checkconfig, broken
files, and the cases where the script is wrong."""

from __future__ import annotations

import gzip
import random

# Everything lxc-checkconfig and the extra checks look at, enabled.
FULL = [
    "CONFIG_SMP=y",
    "CONFIG_NAMESPACES=y",
    "CONFIG_UTS_NS=y",
    "CONFIG_IPC_NS=y",
    "CONFIG_PID_NS=y",
    "CONFIG_USER_NS=y",
    "CONFIG_NET_NS=y",
    "CONFIG_DEVPTS_MULTIPLE_INSTANCES=y",
    "CONFIG_CGROUPS=y",
    "CONFIG_CGROUP_DEVICE=y",
    "CONFIG_CGROUP_SCHED=y",
    "CONFIG_CGROUP_CPUACCT=y",
    "CONFIG_MEMCG=y",
    "CONFIG_CPUSETS=y",
    "CONFIG_VETH=m",
    "CONFIG_MACVLAN=m",
    "CONFIG_VLAN_8021Q=m",
    "CONFIG_BRIDGE=m",
    "CONFIG_NETFILTER_ADVANCED=y",
    "CONFIG_NF_NAT_IPV4=m",
    "CONFIG_NF_NAT_IPV6=m",
    "CONFIG_IP_NF_TARGET_MASQUERADE=m",
    "CONFIG_IP6_NF_TARGET_MASQUERADE=m",
    "CONFIG_NETFILTER_XT_TARGET_CHECKSUM=m",
    "CONFIG_NETFILTER_XT_MATCH_COMMENT=m",
    "CONFIG_FUSE_FS=m",
    "CONFIG_CHECKPOINT_RESTORE=y",
    "CONFIG_FHANDLE=y",
    "CONFIG_EVENTFD=y",
    "CONFIG_EPOLL=y",
    "CONFIG_UNIX_DIAG=m",
    "CONFIG_INET_DIAG=m",
    "CONFIG_PACKET_DIAG=m",
    "CONFIG_NETLINK_DIAG=m",
    "CONFIG_POSIX_MQUEUE=y",
    "CONFIG_CGROUP_FREEZER=y",
    "CONFIG_CGROUP_PIDS=y",
    "CONFIG_SECCOMP=y",
    "CONFIG_SECCOMP_FILTER=y",
    "CONFIG_IP_NF_NAT=m",
    "CONFIG_BRIDGE_VLAN_FILTERING=y",
    "CONFIG_OVERLAY_FS=m",
    "CONFIG_CGROUP_BPF=y",
]


def header(version: str) -> str:
    return f"#\n# Automatically generated file; DO NOT EDIT.\n# Linux/x86 {version} Kernel Configuration\n#\n"


def config(version: str | None, options=FULL, drop=(), extra=()) -> bytes:
    """A config text for VERSION (None: no header) without the DROP options."""
    lines = []
    for option in options:
        name = option.split("=")[0]
        lines.append(f"# {name} is not set" if name in drop else option)
    return ((header(version) if version else "") + "\n".join([*lines, *extra]) + "\n").encode()


def _garbage(seed: int, size: int) -> bytes:
    rng = random.Random(seed)
    return bytes(rng.randrange(256) for _ in range(size))


def _old_26() -> list[str]:
    # Before 3.6 the memory controller was CGROUP_MEM_RES_CTLR; 2.6 kernels
    # had SECURITY_FILE_CAPABILITIES.
    return [o for o in FULL if not o.startswith("CONFIG_MEMCG")] + [
        "CONFIG_CGROUP_MEM_RES_CTLR=y",
        "CONFIG_SECURITY_FILE_CAPABILITIES=y",
    ]


# name -> config bytes. Every entry is run through the real script and the suite.
SYNTHETIC: dict[str, bytes] = {
    "2.6.32": config("2.6.32", _old_26()),
    "2.6.32-no-filecaps": config("2.6.32", _old_26(), drop={"CONFIG_SECURITY_FILE_CAPABILITIES"}),
    "2.6.32-old-header": (
        b"#\n# Automatically generated make config: don't edit\n# Linux kernel version: 2.6.32-5-amd64\n#\n"
        + config(None, _old_26())
    ),
    "3.2": config("3.2.0", _old_26()),
    "3.2-memcg-only": config("3.2.0", FULL),
    "3.10": config("3.10.0", FULL),
    "4.4": config("4.4.0", FULL, drop={"CONFIG_DEVPTS_MULTIPLE_INSTANCES"}),
    "4.9": config("4.9.0", FULL, drop={"CONFIG_NF_NAT_IPV6"}),
    "4.19": config("4.19.0", FULL),
    "5.10": config("5.10.0", FULL, drop={"CONFIG_VLAN_8021Q", "CONFIG_CHECKPOINT_RESTORE"}),
    "6.1": config("6.1.0", FULL),
    "6.1-no-smp": config("6.1.0", FULL, drop={"CONFIG_SMP"}),
    "6.1-required-missing": config("6.1.0", FULL, drop={"CONFIG_PID_NS", "CONFIG_IPC_NS", "CONFIG_NAMESPACES"}),
    "6.1-no-userns": config("6.1.0", FULL, drop={"CONFIG_USER_NS"}),
    "6.12": config("6.12.48", FULL, drop={"CONFIG_MACVLAN"}),
    "10.1.0": config("10.1.0", FULL),
    "no-header": config(None, FULL),
    "empty": b"",
    "binary-garbage": _garbage(1, 4096),
    "binary-with-header": header("6.1.0").encode() + b"\0" * 16 + config(None, FULL),
    "commented-out": config("6.1.0", FULL, drop={"CONFIG_USER_NS"}, extra=["# CONFIG_USER_NS=y was here"]),
    "pipe-value": config("6.1.0", FULL, drop={"CONFIG_VETH"}, extra=["CONFIG_VETH=|"]),
    "gzip-6.1": gzip.compress(config("6.1.0", FULL), mtime=0),
    "gzip-truncated": gzip.compress(config("6.1.0", FULL), mtime=0)[:300],
}
