"""What a run of the suite may have left on the host, found by its run id."""

from __future__ import annotations

from pathlib import Path

import psutil
from pyroute2 import IPRoute, netns


def leftovers(run_id: str) -> list[str]:
    """Anything on the host that carries RUN_ID."""
    found = []
    with IPRoute() as ipr:
        for link in ipr.get_links():
            name, alias = link.get_attr("IFLA_IFNAME"), link.get_attr("IFLA_IFALIAS") or ""
            if run_id[:8] in name or run_id in alias:
                found.append(f"link {name}")
    found += [f"netns {n}" for n in netns.listnetns() if run_id[:8] in n]
    for process in psutil.process_iter(["name", "cmdline"]):
        if process.info["name"] == "dnsmasq" and run_id[:8] in " ".join(process.info["cmdline"] or []):
            found.append(f"dnsmasq {process.pid}")
    found += [str(p) for p in Path("/tmp").glob(f"lxc-compliance-{run_id}*")]
    return found


def run_leftovers(run_id: str) -> list[str]:
    """leftovers() plus RUN_ID's containers (in any lxcpath), overlay mounts, lab
    user, lxc-usernet grant and share of the pam_cgfs delegation."""
    import pwd

    from lxc_compliance.readers.lxc import lxc_paths
    from lxc_compliance.lab.user import USERNET, delegating_runs

    short = run_id[:8]
    found = leftovers(run_id)
    found += [f"container {p}" for path in lxc_paths() for p in path.glob(f"lxcc-{short}-*")]
    found += [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines() if f"lxcc-{short}" in line]
    found += [f"user {u.pw_name}" for u in pwd.getpwall() if u.pw_name == f"lxcc-{short}"]
    found += [f"home {home}" for home in Path("/home").glob(f"lxcc-{short}")]
    if USERNET.is_file():
        found += [f"lxc-usernet {line}" for line in USERNET.read_text().splitlines() if line.startswith(f"lxcc-{short} ")]
    found += [f"pam_cgfs delegation of {run}" for run in delegating_runs() if run == short]
    found += [f"lxd project {project} on {socket}" for socket, project in lxd_projects() if project == f"lxcc-{short}"]
    return found


def lxd_projects() -> list[tuple[Path, str]]:
    """(socket, project) of every project on this host's LXD or Incus and on the suite's own daemons."""
    from lxc_compliance.readers.lxd import ReadOnlyLxd, find_socket

    found = []
    own = [*Path("/tmp").glob("lxc-compliance-*-lxd/unix.socket"), *Path("/tmp").glob("lxc-compliance-*-incus/unix.socket")]
    for socket in dict.fromkeys(filter(None, [find_socket(), find_socket(server="incus"), *own])):
        try:
            found += [(socket, p["name"]) for p in ReadOnlyLxd(socket, timeout=5).get("projects", recursion=1)]
        except Exception:  # a daemon going away while it is read
            continue
    return found
