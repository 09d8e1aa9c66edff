"""Room for the fleet, for real: a small ext4 filesystem of the test's own,
loop-mounted as root's lxcpath in a private mount namespace (the host's
/var/lib/lxc untouched), holding a gold of 20 MB. Three full copies do not fit:
the capacity checks fail before anything is copied, naming the room needed and
the room there, and the samples are not made."""

from __future__ import annotations

import os
import subprocess

import pytest

from conftest import ROOT

pytestmark = pytest.mark.xdist_group("host-state")

GOLD = "roomgold"
# The lxcpath the suite sees: the test's filesystem, mounted over /var/lib/lxc in its own namespace only.
ON_SMALL_DISK = ("unshare", "--mount", "--propagation", "private", "sh", "-c",
                 'mount -o loop "$IMAGE" /var/lib/lxc && exec "$@"', "small-lxcpath")


@pytest.fixture
def small_lxcpath(tmp_path):
    """A 48 MB ext4 image whose root holds the gold (a config and a 20 MB rootfs), made with debugfs's
    own writes (nothing mounted outside the test's namespace)."""
    image, rootfs = tmp_path / "lxcpath.img", tmp_path / "tree"
    (rootfs / GOLD / "rootfs").mkdir(parents=True)
    (rootfs / GOLD / "config").write_text(f"lxc.uts.name = {GOLD}\nlxc.rootfs.path = dir:/var/lib/lxc/{GOLD}/rootfs\n")
    (rootfs / GOLD / "rootfs" / "payload").write_bytes(os.urandom(20 * 2**20))
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(rootfs), str(image), "48M"], check=True, timeout=60)
    yield image
    leftover = subprocess.run(["losetup", "-j", str(image)], capture_output=True, text=True, timeout=10).stdout
    assert not leftover.strip(), f"a loop device was left: {leftover}"


def test_a_disk_without_room_for_the_copies_is_told_before_any_is_made(suite, small_lxcpath, tmp_path):
    profile = tmp_path / "room.yaml"
    profile.write_text(
        f"extends: {ROOT / 'profiles' / 'lab.yaml'}\ncategories: [host, containers]\n"
        "host: {containers: 3, disk_per_container: 1M}\n"
        f"containers: {{gold: {GOLD}, build_gold: false, clone: copy, samples: 3,\n"
        "  ssh: {user: student, password_env: LXCC_ROOM_PASSWORD}}\n")
    result = suite.run(f"--profile={profile}", prefix=ON_SMALL_DISK, timeout=300,
                       env={"IMAGE": str(small_lxcpath), "LXCC_ROOM_PASSWORD": "not-used"})
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-2000:]
    checks = {c["id"]: c for c in suite.results("room")["checks"]}
    failed = {i for i, c in checks.items() if c["outcome"] in ("failed", "error")}
    assert failed == {"host.fleet_room", "containers.room"}, {i: checks[i]["message"] for i in failed}
    room = checks["containers.room"]["message"]
    assert room.startswith("not copying the samples: 3 full copies of 20M need 60M on /var/lib/lxc (ext2/ext3), "
                           "which has "), room
    free_mb = int(room.split("which has ")[1].split("M")[0])
    assert 10 < free_mb < 60, room
    planned = checks["host.fleet_room"]["message"]
    assert "3 full copies of 20M and 1M for what gets installed in each need 63M on /var/lib/lxc" in planned, planned
    samples = [c for i, c in checks.items() if i.startswith("containers.running.")]
    assert len(samples) == 3 and all(c["message"].startswith("not checked: containers.room failed") for c in samples)
    # Nothing was copied onto the disk: its root still holds the gold alone.
    listing = subprocess.run(["debugfs", "-R", "ls -p /", str(small_lxcpath)], capture_output=True, text=True,
                             timeout=30).stdout
    names = {line.split("/")[5] for line in listing.splitlines() if line.count("/") >= 6} - {".", "..", ""}
    assert names == {GOLD, "lost+found"}, listing
