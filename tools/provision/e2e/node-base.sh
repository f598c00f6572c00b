#!/usr/bin/env bash
# The base of the offline kind node image, like kind's own (images/base of its module) but
# made from Debian packages: a bookworm root filesystem (debootstrap from this machine's own
# Debian mirror) with systemd, containerd, runc, the CNI plugins, conntrack, iptables…, kind's
# base files (entrypoint, containerd config, kubelet units) from the kind module in the Go
# module cache, imported as a docker image.
#
# Differences from kind's base, each for a reason:
#   - bookworm (systemd 252), not trixie: systemd >= 256 refuses to boot on a cgroup v1 host;
#   - Debian's containerd 1.6 and runc 1.1 (kind builds 2.x and 1.4 from GitHub): ExecStart
#     points at /usr/bin/containerd, the fuse-overlayfs proxy plugin is dropped;
#   - no OOMScoreAdjust=-999 on containerd, and containerd's restrict_oom_score_adj on: on the
#     test VMs a negative oom_score_adj cannot be written (no CAP_SYS_RESOURCE);
#   - the CNI plugins are Debian's, in /usr/lib/cni, linked as /opt/cni/bin.
#
# Usage: bash tools/provision/e2e/node-base.sh IMAGE KIND_MODULE_DIR
set -euo pipefail
cd "$(dirname "$0")/../../.."
image=$1 kind_dir=$2
docker=${DOCKER:-/usr/bin/docker}
work=.cache/e2e/node-base
files=$kind_dir/images/base/files

if "$docker" image inspect "$image" >/dev/null 2>&1; then
  echo "node-base: $image already built"
  exit 0
fi
source tools/provision/e2e/debootstrap.sh

rm -rf "$work"
mkdir -p "$work"
root=$work/rootfs
packages=systemd,systemd-sysv,dbus,containerd,runc,containernetworking-plugins,conntrack,iptables
packages+=,nftables,iproute2,ethtool,util-linux,mount,kmod,libseccomp2,e2fsprogs,ca-certificates
packages+=,procps,socat,jq
# ipset: kube-router's network policy firewall (node-image.sh), in the images made from this rootfs.
packages+=,ipset
# The plain debootstrap is kept as a tarball, by package list: a rebuild starts from it.
plain=.cache/e2e/bookworm-$(sha256sum <<<"$packages" | cut -c1-12).tar
if [ ! -f "$plain" ]; then
  echo "node-base: debootstrap bookworm (a few minutes)"
  debootstrap_bookworm "$root" "$packages" "$work/debootstrap.log"
  tar -C "$root" -cf "$plain.tmp" . && mv "$plain.tmp" "$plain"
else
  mkdir -p "$root" && tar -C "$root" -xf "$plain"
fi

cp -a "$files/etc/." "$root/etc/"
mkdir -p "$root/kind"
cp -a "$files/kind/." "$root/kind/"
install -m 0755 "$files"/usr/local/bin/* "$root/usr/local/bin/"
chmod 0755 "$root"/kind/bin/*

# kind's systemd trimming (its Dockerfile), then its units.
rm -f "$root"/lib/systemd/system/sysinit.target.wants/systemd-tmpfiles-setup.service \
  "$root"/lib/systemd/system/multi-user.target.wants/* "$root"/etc/systemd/system/*.wants/* \
  "$root"/lib/systemd/system/local-fs.target.wants/* \
  "$root"/lib/systemd/system/sockets.target.wants/*udev* \
  "$root"/lib/systemd/system/sockets.target.wants/*initctl* \
  "$root"/lib/systemd/system/basic.target.wants/*
echo "ReadKMsg=no" >>"$root/etc/systemd/journald.conf"
ln -sf /usr/lib/systemd/systemd "$root/sbin/init"

sed -i -e 's|^ExecStart=/usr/local/bin/containerd|ExecStart=/usr/bin/containerd|' \
  -e '/^OOMScoreAdjust=/d' "$root/etc/systemd/system/containerd.service"
# Debian's own containerd unit would win over nothing, but keep one definition.
rm -f "$root/lib/systemd/system/containerd.service"
python3 - "$root/etc/containerd/config.toml" <<'PY'
import re, sys
path = sys.argv[1]
text = open(path).read()
text = re.sub(r"\[proxy_plugins\]\n(?:.*\n)*?\n", "", text, count=1)  # fuse-overlayfs: not here
text = text.replace("restrict_oom_score_adj = false", "restrict_oom_score_adj = true")
open(path, "w").write(text)
PY
grep -q 'restrict_oom_score_adj = true' "$root/etc/containerd/config.toml"
! grep -q proxy_plugins "$root/etc/containerd/config.toml"
mkdir -p "$root/opt/cni"
ln -sfn /usr/lib/cni "$root/opt/cni/bin"
chroot "$root" sh -c 'ctr oci spec' |
  jq '.hooks.createContainer[.hooks.createContainer | length] |= . + {"path": "/kind/bin/mount-product-files.sh"}' |
  jq 'del(.process.rlimits)' >"$root/etc/containerd/cri-base.json"
chroot "$root" systemctl enable kubelet.service containerd.service undo-mount-hacks.service >/dev/null 2>&1
chroot "$root" systemctl mask systemd-binfmt.service >/dev/null 2>&1
mkdir -p "$root/etc/kubernetes/manifests"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*

tar -C "$root" -c . | "$docker" import - "$image-rootfs" >/dev/null
rm -rf "$work"
# docker import takes no STOPSIGNAL: the rest of the image's config from a build (no network).
mkdir -p "$work"
cat >"$work/Dockerfile" <<EOF
FROM $image-rootfs
ENV container=docker
STOPSIGNAL SIGRTMIN+3
ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]
EOF
DOCKER_BUILDKIT=0 "$docker" build -q -t "$image" "$work" >/dev/null
"$docker" rmi "$image-rootfs" >/dev/null
rm -rf "$work"
echo "node-base: $image built"
