#!/bin/sh
# Build a Debian base image locally when no registry can be pulled from:
#   images/base/bootstrap.sh debian:bookworm-slim
# debootstrap installs a minimal Debian from the host's own apt mirror (so a
# campus mirror or proxy works the same way) and `docker import` tags the result.
set -eu
image=${1:?usage: bootstrap.sh IMAGE (for example debian:bookworm-slim)}
suite=$(echo "$image" | sed -n 's/^debian:\([a-z]*\).*/\1/p')
if [ -z "$suite" ]; then
  echo "bootstrap.sh: can only bootstrap debian:<suite>[-slim] images, not '$image'." >&2
  echo "Set images.base to a debian image, or make '$image' available to Docker first." >&2
  exit 2
fi
# The first Debian archive URL the host's apt knows (deb822 or one-line format).
mirror=$(cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
  | sed -n -e 's/^URIs:[[:space:]]*\([^[:space:]]*\).*/\1/p' \
           -e 's/^deb[[:space:]]\{1,\}\(\[[^]]*\][[:space:]]*\)\{0,1\}\([^[:space:]]*\).*/\2/p' \
  | grep -v -e security -e '^cdrom' | head -n 1)
if [ -z "$mirror" ]; then
  echo "bootstrap.sh: found no Debian mirror in /etc/apt/sources.list{,.d}; add one and retry." >&2
  exit 2
fi
root=$(mktemp -d /var/tmp/classroom-base.XXXXXX)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase "$suite" "$root" "$mirror" >/dev/null
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | docker import --change 'CMD ["bash"]' - "$image" >/dev/null
echo "bootstrapped $image from $mirror"
