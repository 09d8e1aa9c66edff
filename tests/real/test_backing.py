"""Backing stores for real, in lxcpaths of the test's own: a folder, an overlay clone of
the lab's gold (lxc-copy -s -B overlayfs) that really starts, a btrfs subvolume on a
btrfs image loop-mounted in the suite's private mount namespace; and the faults: an
overlay whose gold is gone, a btrfs container moved onto ext4 (lxc-start really fails
on it), an LVM volume and a ZFS dataset on a kernel without either, and the AfNOG
workshop recipe's aufs line in an /etc/fstab bound over the host's in that namespace
only. One run: exactly the faults fail, each naming what is missing."""

from __future__ import annotations

import subprocess
import time

import pytest

from conftest import ROOT

# The suite's view: the btrfs image mounted at $BTRFS and $FSTAB over /etc/fstab, in its namespace only.
PRIVATE_VIEW = ("unshare", "--mount", "--propagation", "private", "sh", "-c",
                'mount -o loop "$IMAGE" "$BTRFS" && mount --bind "$FSTAB" /etc/fstab && exec "$@"', "backing-view")
AUFS_LINE = ("none /home/inst/.local/share/lxc/pc1/rootfs aufs "
             "br=/home/inst/.local/share/lxc/pc1/rootfs.rw=rw:/home/inst/.local/share/lxc/debian8/rootfs=ro 0 0\n")


def _container(lxcpath, name: str, rootfs: str, folder=None) -> None:
    """A container defined by its config alone (liblxc loads it as lxc-create writes it)."""
    (lxcpath / name).mkdir(parents=True)
    (lxcpath / name / "config").write_text(
        f"lxc.include = /usr/share/lxc/config/common.conf\nlxc.arch = linux64\nlxc.uts.name = {name}\n"
        f"lxc.rootfs.path = {rootfs}\n")
    if folder is not None:
        (folder / "etc").mkdir(parents=True)
        (folder / "etc" / "hostname").write_text(name + "\n")


def _lxc(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def stores(tmp_path, lab_gold):
    """Two lxcpaths (one on ext4, one on a btrfs image) holding one container per backing store."""
    plain, on_btrfs, image = tmp_path / "lxc", tmp_path / "btrfs", tmp_path / "btrfs.img"
    plain.mkdir()
    on_btrfs.mkdir()
    try:  # the finally stops and destroys the overlay clone, also when making the others fails
        _container(plain, "bs-dir", f"dir:{plain}/bs-dir/rootfs", plain / "bs-dir" / "rootfs")
        done = _lxc("lxc-copy", "-n", lab_gold.name, "-N", "bs-overlay", "-p", str(plain), "-s", "-B", "overlayfs",
                    timeout=300)
        assert done.returncode == 0, done.stderr
        config = plain / "bs-overlay" / "config"
        # Started with no network: the gold's bridge is the lab's, not there between runs.
        lines = [line for line in config.read_text().splitlines() if not line.startswith("lxc.net.0.")]
        config.write_text("\n".join(lines + ["lxc.net.0.type = empty", ""]))
        # An overlay clone whose gold was removed: its lower folder is gone.
        _container(plain, "bs-gold-gone", f"overlay:{tmp_path}/lxcc-removed-gold/rootfs:{plain}/bs-gold-gone/delta0")
        (plain / "bs-gold-gone" / "delta0").mkdir()
        _container(plain, "bs-btrfs-moved", f"btrfs:{plain}/bs-btrfs-moved/rootfs", plain / "bs-btrfs-moved" / "rootfs")
        _container(plain, "bs-lvm", "lvm:/dev/lxcc-vg/bs-lvm")
        _container(plain, "bs-zfs", "zfs:lxcc/bs-zfs")
        subprocess.run(["truncate", "-s", "256M", str(image)], check=True)
        subprocess.run(["mkfs.btrfs", "-q", str(image)], check=True, capture_output=True, timeout=60)
        made = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c",
             'mount -o loop "$1" "$2" && mkdir "$2/bs-btrfs" && btrfs -q subvolume create "$2/bs-btrfs/rootfs" '
             '&& mkdir "$2/bs-btrfs/rootfs/etc" && printf "%s\\n" "$3" > "$2/bs-btrfs/config"', "make",
             str(image), str(on_btrfs),
             f"lxc.include = /usr/share/lxc/config/common.conf\nlxc.uts.name = bs-btrfs\n"
             f"lxc.rootfs.path = btrfs:{on_btrfs}/bs-btrfs/rootfs"],
            capture_output=True, text=True, timeout=60)
        assert made.returncode == 0, made.stderr
        yield {"plain": plain, "btrfs": on_btrfs, "image": image}
    finally:
        _lxc("lxc-stop", "-P", str(plain), "-n", "bs-overlay", "-k", timeout=60)
        _lxc("lxc-destroy", "-P", str(plain), "-n", "bs-overlay", timeout=60)
        leftover = _lxc("losetup", "-j", str(image)).stdout
        assert not leftover.strip(), f"a loop device was left: {leftover}"


def _running(lxcpath, name: str, within: float = 30) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if _lxc("lxc-info", "-P", str(lxcpath), "-n", name, "-s").stdout.split()[-1:] == ["RUNNING"]:
            return True
        time.sleep(0.5)
    return False


def test_each_storage_this_host_cannot_mount_fails_naming_what_is_missing(suite, stores, tmp_path):
    fstab = tmp_path / "fstab"
    fstab.write_text(open("/etc/fstab").read() + AUFS_LINE)
    profile = tmp_path / "backing.yaml"
    profile.write_text(f"extends: {ROOT / 'profiles' / 'lab.yaml'}\ncategories: [host, fleet]\n"
                       f"fleet: {{lxcpaths: [{stores['plain']}, {stores['btrfs']}]}}\n")
    result = suite.run(f"--profile={profile}", "-k", "backing_store or fstab_union", prefix=PRIVATE_VIEW,
                       env={"IMAGE": str(stores["image"]), "BTRFS": str(stores["btrfs"]), "FSTAB": str(fstab)})
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-2000:]
    checks = {c["id"]: c for c in suite.results("backing")["checks"]}
    outcomes = {i: c["outcome"] for i, c in checks.items()}
    assert outcomes == {"host.fstab_union": "failed", "fleet.backing_store.bs-dir": "passed",
                        "fleet.backing_store.bs-overlay": "passed", "fleet.backing_store.bs-btrfs": "passed",
                        "fleet.backing_store.bs-gold-gone": "failed", "fleet.backing_store.bs-btrfs-moved": "failed",
                        "fleet.backing_store.bs-lvm": "failed", "fleet.backing_store.bs-zfs": "failed"}, outcomes
    message = {i: c["message"] for i, c in checks.items()}
    assert "lower (the gold's rootfs) folder" in message["fleet.backing_store.bs-gold-gone"]
    assert "lxcc-removed-gold/rootfs is missing" in message["fleet.backing_store.bs-gold-gone"]
    assert "not btrfs: LXC cannot make or mount its subvolume" in message["fleet.backing_store.bs-btrfs-moved"]
    assert "no device-mapper" in message["fleet.backing_store.bs-lvm"]
    assert "no ZFS" in message["fleet.backing_store.bs-zfs"]
    assert message["host.fstab_union"].startswith("1 /etc/fstab line(s) mount aufs, which this kernel does not have"), \
        message["host.fstab_union"]
    assert checks["fleet.backing_store.bs-btrfs"]["actual"].startswith("btrfs: a btrfs subvolume at ")

    # The verdicts are LXC's own: the overlay clone starts, the btrfs container moved onto ext4 does not.
    plain = stores["plain"]
    started = _lxc("lxc-start", "-P", str(plain), "-n", "bs-overlay")
    assert started.returncode == 0 and _running(plain, "bs-overlay"), started.stderr
    moved = _lxc("lxc-start", "-P", str(plain), "-n", "bs-btrfs-moved", "-F", "--", "/bin/true", timeout=60)
    assert moved.returncode != 0, moved.stdout + moved.stderr
