"""What SshHost sends another host: the shell scripts of its batches (each reads many things in
one command, forking as little as the shell allows), and the readers of what ip and ss print there."""

from __future__ import annotations

import fnmatch
import re
import shlex

from lxc_compliance.readers.machine import Link, UdpSocket

# One command reads many paths: each as "F PATH BASE64" (a readable regular file), "T PATH<tab>LINE"
# (a kernel text file of one line, read by the shell itself: no fork for the ~70 sysctl and
# cgroup files a run reads), "U PATH" (a file it may not read), "D PATH<tab>BASE64" (a directory and its entries,
# "D PATH" where it may not list it), "E PATH" (something else that exists), "X PATH"
# (behind a directory it may not enter) or "N PATH"; a link first as "L PATH<tab>TARGET",
# then what it leads to. The walk up a missing path's folders forks nothing (${d%/*}).
# "@release@" in a path is the host's kernel release (uname -r there, said first as "K RELEASE").
READ_MANY = r"""case "$*" in *@release@*) r=$(uname -r); printf 'K %s\n' "$r";; esac
for p in "$@"; do
  case $p in *@release@*) p=${p%%@release@*}$r${p#*@release@};; esac
  if [ -L "$p" ]; then printf 'L %s\t%s\n' "$p" "$(readlink -- "$p")"; fi
  if [ -f "$p" ] && [ -r "$p" ]; then
    case $p in /proc/sys/*|/sys/fs/cgroup/*) b=
      if { IFS= read -r a && ! IFS= read -r b && [ -z "$b" ]; } 2>/dev/null < "$p"; then printf 'T %s\t%s\n' "$p" "$a"; continue; fi;;
    esac
    printf 'F %s ' "$p"; base64 -w0 < "$p"; echo
  elif [ -f "$p" ]; then printf 'U %s\n' "$p"
  elif [ -d "$p" ]; then
    if l=$(ls -1A -- "$p" 2>/dev/null); then printf 'D %s\t' "$p"; printf '%s' "$l" | base64 -w0; echo
    else printf 'D %s\n' "$p"; fi
  elif [ -e "$p" ]; then printf 'E %s\n' "$p"
  else k=N; d=${p%/*}; while case $d in /?*) true;; *) false;; esac; do [ ! -d "$d" ] || [ -x "$d" ] || k=X; d=${d%/*}; done
    printf '%s %s\n' "$k" "$p"; fi
done"""
# One command runs many read-only commands, each as "R INDEX RC BASE64(stdout) BASE64(stderr)"
# (each '.' keeps trailing newlines from $(...), which drops them).
RUN_MANY = r"""exec 4>&1; i=0
for c in "$@"; do
  e=$( { o=$(sh -c "$c" 2>&3; r=$?; echo .; exit $r); r=$?; printf 'R %s %s ' "$i" "$r" >&4
         printf '%s' "${o%.}" | base64 -w0 >&4; } 3>&1; echo . )
  printf ' %s\n' "$(printf '%s' "${e%.}" | base64 -w0)"
  i=$((i+1))
done"""
# Where one command's output ends and the next one's starts, in a batch of them.
PART = "@@lxcc-part@@"
# Each cgroup and cgroup2 mount point of the host, one per line (/proc/self/mounts escapes spaces as \040).
CGROUP_MOUNTS = "awk '$3 == \"cgroup\" || $3 == \"cgroup2\" {print $2}' /proc/self/mounts"
# One command finds programs (as `command -v` would, without a fork each) and reads what the
# kernel checks ask of them: "W PROGRAM [PATH]", then one stat for all, "S MODE(hex) UID PATH", and
# one getfattr for all ("# file: PATH", then "security.capability=0xHEX" where PATH has file capabilities).
PROGRAMS = r"""PATH="$PATH:/usr/sbin:/sbin"; found=
for program in "$@"; do
  path=; IFS=:; for d in $PATH; do [ -f "${d:-.}/$program" ] && [ -x "${d:-.}/$program" ] && { path=${d:-.}/$program; break; }; done; unset IFS
  printf 'W %s %s\n' "$program" "$path"; [ -z "$path" ] || set -- "$@" "$path"; found=$found.
done
shift ${#found}
[ $# -eq 0 ] || { stat -L -c 'S %f %u %n' -- "$@"; getfattr --absolute-names -n security.capability -e hex -- "$@" 2>/dev/null; }; true"""
# ss has no JSON output: one line per socket, "UNCONN 0 0 10.0.3.1%br0:67 0.0.0.0:* users:(("dnsmasq",pid=9,fd=4))".
_SS_LINE = r"^\S+\s+\d+\s+\d+\s+(?P<address>[\d.*]+)(?:%(?P<device>\S+))?:{port}\s+\S+(?:\s+users:\(\(\"(?P<name>[^\"]+)\",pid=(?P<pid>\d+))?"


def parse_ss(text: str, port: int) -> list[UdpSocket]:
    """The PORT sockets in ``ss -H -u -a -n -p 'sport = :PORT'`` output.

    >>> [s.describe() for s in parse_ss('UNCONN 0 0 0.0.0.0%br0:67 0.0.0.0:* users:(("dnsmasq",pid=9,fd=4))\\n'
    ...                                 'UNCONN 0 0 *:67 *:*\\n', 67)]
    ['dnsmasq[9] on 0.0.0.0%br0:67', '?[None] on 0.0.0.0 (all interfaces):67']
    """
    pattern = re.compile(_SS_LINE.format(port=port))
    sockets = []
    for line in text.splitlines():
        match = pattern.match(line.strip())
        if match:
            address = "0.0.0.0" if match["address"] == "*" else match["address"]
            sockets.append(UdpSocket(address, match["device"], int(match["pid"]) if match["pid"] else None,
                                     match["name"] or "?", port))
    return sockets


def glob_word(path: str) -> str:
    """PATH as one shell word, its '*' left to the shell.

    >>> glob_word("/var/lib/lxc/my pc/rootfs/etc/ssh/ssh_host_*_key.pub")
    "'/var/lib/lxc/my pc/rootfs/etc/ssh/ssh_host_'*_key.pub"
    """
    return "*".join(shlex.quote(part) if part else "" for part in path.split("*"))


def matches(path: str, parts: list[str]) -> bool:
    """PATH matches the glob PARTS part for part ('*' never spans a '/'), dot files left out.

    >>> matches("/r/etc/ssh/ssh_host_rsa_key.pub", "r/etc/ssh/ssh_host_*_key.pub".split("/"))
    True
    >>> matches("/r/etc/ssh/ssh_host_rsa_key", "r/etc/ssh/ssh_host_*_key.pub".split("/"))
    False
    """
    names = path.strip("/").split("/")
    return (len(names) == len(parts) and not names[-1].startswith(".")
            and all(fnmatch.fnmatchcase(name, part) for name, part in zip(names, parts)))


def link_from_ip(name: str, links: list, addresses: list, ports: list) -> Link:
    """A Link from ``ip -j -d link show dev NAME``, ``ip -j -4 addr show dev NAME`` and
    ``ip -j link show master NAME`` (ip prints the bridge's forward delay in centiseconds).

    >>> link_from_ip("br0", [{"flags": ["UP"], "mtu": 1500, "linkinfo": {"info_kind": "bridge",
    ...     "info_data": {"forward_delay": 0, "stp_state": 0}}}], [{"addr_info": [{"family": "inet",
    ...     "local": "10.0.3.1", "prefixlen": 24}]}], [{"ifname": "veth1"}]).describe()
    'br0: bridge, up, 10.0.3.1/24, forward delay 0.0s, STP off, MTU 1500, ports: veth1'
    """
    if not links:
        return Link(name)
    link = links[0]
    info = link.get("linkinfo") or {}
    data = info.get("info_data") or {}
    delay, stp = data.get("forward_delay"), data.get("stp_state")
    return Link(name, True, info.get("info_kind"), "UP" in link.get("flags", []), link.get("mtu"),
                None if delay is None else delay / 100, None if stp is None else bool(stp),
                tuple(port["ifname"] for port in ports if "ifname" in port),
                tuple(f"{a['local']}/{a['prefixlen']}" for entry in addresses for a in entry.get("addr_info", [])
                      if a.get("family") == "inet"))
