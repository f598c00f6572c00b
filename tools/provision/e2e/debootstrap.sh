# Sourced by the e2e image scripts: a Debian bookworm root filesystem from this machine's own
# Debian mirror (read from apt's sources; DEBIAN_MIRROR overrides it).

# debootstrap_bookworm ROOT PACKAGES LOG: minbase plus PACKAGES (comma-separated) into ROOT.
debootstrap_bookworm() {
  local root=$1 packages=$2 log=$3 mirror
  mirror=${DEBIAN_MIRROR:-$(awk '/^URIs:/ {print $2; exit}' \
    /etc/apt/sources.list.d/debian.sources 2>/dev/null)}
  [ -n "$mirror" ] || { echo "set DEBIAN_MIRROR (no Debian mirror in apt's sources)" >&2; return 1; }
  debootstrap --variant=minbase --include="$packages" bookworm "$root" "$mirror" >"$log" 2>&1 ||
    { tail -20 "$log" >&2; return 1; }
}
