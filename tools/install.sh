#!/bin/sh
# install.sh -- install the Debian packages that are missing, and only
# those: the one place the scripts call apt-get.
#
#   tools/install.sh [--no-services] WHO PACKAGE...
#
# WHO prefixes the progress line ("setup: installing: ...").  Runs apt-get
# through sudo when not root.  --no-services keeps Debian from starting a
# package's system service on install (policy-rc.d exits 101): the
# benchmark starts its own nginx, etcd and Redis, and a stray daemon left
# on port 80 is not something a script should leave behind.
set -eu

NO_SERVICES=0
if [ "${1:-}" = "--no-services" ]; then
    NO_SERVICES=1
    shift
fi
WHO=$1
shift

missing=""
for p in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
        missing="$missing $p"
    fi
done
[ -n "$missing" ] || exit 0

echo "$WHO: installing:$missing"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
policy=""
if [ "$NO_SERVICES" -eq 1 ] && [ ! -e /usr/sbin/policy-rc.d ]; then
    policy=/usr/sbin/policy-rc.d
    trap '$SUDO rm -f "$policy"' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod 755 "$policy"
fi
# A fresh machine may be running its own apt (apt-daily), and a mirror may
# fail a request.  apt-get update does not wait for the lists' lock: try it
# every 15 s for up to 5 minutes.  Install waits for dpkg's lock
# (DPkg::Lock::Timeout) and is tried three times.
APT_OPTS="-o DPkg::Lock::Timeout=300 -o Acquire::Retries=3"
rc=0
n=0
# $missing and $APT_OPTS are word lists on purpose.
# shellcheck disable=SC2086
until $SUDO apt-get $APT_OPTS update -qq; do
    n=$((n + 1))
    [ "$n" -lt 20 ] || { rc=1; break; }
    echo "$WHO: apt-get update failed, trying again in 15 s" >&2
    sleep 15
done
for try in 1 2 3; do
    [ "$rc" -eq 0 ] || break
    # shellcheck disable=SC2086
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get $APT_OPTS \
        install -y -qq --no-install-recommends $missing && break
    rc=$?
    [ "$try" -eq 3 ] || {
        echo "$WHO: apt-get install failed ($rc), trying again in 20 s" >&2
        sleep 20
        rc=0
    }
done
exit "$rc" # the EXIT trap removes policy-rc.d
