"""The container servers of the LXD family, in their users' words: what the
catalogue's {server}, {cli}, {admin_group}, ... say on a host that runs each."""

# Each server's name, its command, its admin group (members are root-equivalent),
# the key and the socket of the guest API, its bridge, its table, its log, how it starts.
SERVERS = {
    "lxd": {"server": "LXD", "cli": "lxc", "admin_group": "lxd", "guest_api": "security.devlxd",
            "guest_socket": "/dev/lxd/sock", "bridge": "lxdbr0", "nft_table": "inet lxd",
            "log": "/var/log/lxd/lxd.log",
            "start": "Debian: lxd --group lxd --logfile /var/log/lxd/lxd.log & then lxd waitready; the snap: snap start lxd"},
    "incus": {"server": "Incus", "cli": "incus", "admin_group": "incus-admin", "guest_api": "security.guestapi",
              "guest_socket": "/dev/incus/sock", "bridge": "incusbr0", "nft_table": "inet incus",
              "log": "/var/log/incus/incusd.log",
              "start": "systemctl start incus; without systemd: /usr/libexec/incus/incusd --group incus-admin "
                       "--logfile /var/log/incus/incusd.log & then incus admin waitready"},
}
