"""Backing stores this machine cannot have (no device-mapper, no ZFS, no aufs in its
kernel, no NFS), on recorded hosts. Facts as the kernel and the tools print them:
/proc/devices' "254 device-mapper" (drivers/md/dm.c registers it), LVM's device-mapper
uuid "LVM-" + the volume group's and the volume's uuids without dashes (lvm2's
dev_manager.c), `zfs list -H -o name` printing the dataset alone (zfsutils-linux)."""

from __future__ import annotations

import pytest
from recorded_host import RecordedHost

from lxc_compliance.readers.backing import BackingStore, union_lines

pytestmark = pytest.mark.unit

PROC_FILESYSTEMS = "nodev\tsysfs\nnodev\tproc\n\text4\nnodev\toverlay\n\tbtrfs\n"
LVM_UUID = "LVM-" + "q3bM1wzfVjJrP9kL2sXyT7a0cD4eF5gH" + "aB1cD2eF3gH4iJ5kL6mN7oP8qR9sT0uV"


def _lvm_host(devices: str = "  7 loop\n254 device-mapper\n", volume: bool = True) -> RecordedHost:
    commands = {"test -b /dev/lxc/pc1": "", "stat -L -c '%t %T' /dev/lxc/pc1": "fe 1\n"} if volume else {}
    return RecordedHost({"/proc/devices": "Block devices:\n" + devices, "/proc/filesystems": PROC_FILESYSTEMS,
                         "/sys/dev/block/254:1/dm/uuid": LVM_UUID + "\n"}, commands)


@pytest.mark.parametrize("host, problem", [
    (_lvm_host(), None),
    (_lvm_host(volume=False), "there is no block device /dev/lxc/pc1 (lvs lists the volumes)"),
    (_lvm_host(devices="  7 loop\n"), "this kernel has no device-mapper (/proc/devices; dm_mod not loaded)"),
], ids=["volume there", "volume gone", "no device-mapper"])
def test_an_lvm_container_needs_its_volume_and_device_mapper(host, problem):
    store = BackingStore.of("lvm:/dev/lxc/pc1", "/var/lib/lxc/pc1/rootfs", host)
    assert store.kind == "lvm" and store.problem(host)[0] == problem


def test_a_bare_block_device_is_lvm_when_device_mapper_says_so():
    host = _lvm_host()
    host.commands["test -b /dev/lxc/pc1"] = ""
    assert BackingStore.of("/dev/lxc/pc1", "", host).kind == "lvm"


@pytest.mark.parametrize("files, commands, problem", [
    ({"/proc/filesystems": PROC_FILESYSTEMS + "nodev\tzfs\n", "/usr/sbin/zfs": ""},
     {"zfs list -H -o name tank/lxc/pc1": "tank/lxc/pc1\n"}, None),
    ({"/proc/filesystems": PROC_FILESYSTEMS + "nodev\tzfs\n", "/usr/sbin/zfs": ""}, {},
     "there is no ZFS dataset tank/lxc/pc1 (zfs list)"),
    ({"/proc/filesystems": PROC_FILESYSTEMS}, {}, "this kernel has no ZFS (/proc/filesystems; zfs module not loaded)"),
], ids=["dataset there", "dataset gone", "no zfs module"])
def test_a_zfs_container_needs_its_dataset(files, commands, problem):
    host = RecordedHost(files, commands)
    assert BackingStore.of("zfs:tank/lxc/pc1", "", host).problem(host)[0] == problem


def test_an_overlay_cannot_write_its_upper_folder_onto_nfs():
    host = RecordedHost({"/proc/filesystems": PROC_FILESYSTEMS, "/srv/gold/rootfs/etc/os-release": "",
                         "/home/pcs/pc1/delta0/etc/hostname": ""},
                        {"stat -f -L -c '%a %S %d %T' /home/pcs/pc1/delta0": "100 4096 100 nfs\n"})
    store = BackingStore.of("overlay:/srv/gold/rootfs:/home/pcs/pc1/delta0", "", host)
    assert store.problem(host)[0] == "its upper folder /home/pcs/pc1/delta0 is on NFS, which overlay cannot write to"


def test_a_btrfs_container_copied_onto_ext4_is_named():
    host = RecordedHost({"/var/lib/lxc/pc1/rootfs/etc/hostname": ""},
                        {"stat -f -L -c '%a %S %d %T' /var/lib/lxc/pc1/rootfs": "100 4096 100 ext2/ext3\n"})
    assert BackingStore.of("btrfs:/var/lib/lxc/pc1/rootfs", "", host).problem(host)[0] == (
        "/var/lib/lxc/pc1/rootfs is on ext2/ext3, not btrfs: LXC cannot make or mount its subvolume")


def test_the_workshop_recipe_s_aufs_lines_are_named_where_the_kernel_has_no_aufs():
    fstab = ("UUID=0a1b / ext4 errors=remount-ro 0 1\n"
             "none /home/inst/.local/share/lxc/pc1/rootfs aufs "
             "br=/home/inst/.local/share/lxc/pc1/rootfs.rw=rw:/home/inst/.local/share/lxc/debian8/rootfs=ro 0 0\n")
    without = union_lines(RecordedHost({"/etc/fstab": fstab, "/proc/filesystems": PROC_FILESYSTEMS}))
    assert [(line.where, line.target, line.kernel_has) for line in without] == [
        ("/etc/fstab:2", "/home/inst/.local/share/lxc/pc1/rootfs", False)]
    with_aufs = union_lines(RecordedHost({"/etc/fstab": fstab, "/proc/filesystems": PROC_FILESYSTEMS + "nodev\taufs\n"}))
    assert [line.kernel_has for line in with_aufs] == [True]
