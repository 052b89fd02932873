#!/bin/sh
# package.sh -- build the Debian packages from this tree, check them with
# lintian, install them on this machine, use them as a user would, and
# remove them again.
#
#   tools/package.sh
#
# 1. dpkg-buildpackage -us -uc -b on a copy of the tree (tracked and new
#    files, not build directories), in a temporary directory;
# 2. lintian: any error or warning fails (debian/README.source explains the
#    tags that remain, at the info level);
# 3. apt-get install the .debs, as root (CI is a fresh machine; refused if an
#    etagkv package is already installed, so that nothing of the machine's
#    own is replaced or purged);
# 4. compile examples/ against the installed files with pkg-config (shared
#    library) and with CMake's find_package(etagkv) (shared and static) and
#    run them; check the manual pages with man -w; run the CLI;
# 5. systemd-analyze verify the installed unit (where systemd is
#    installed); start etagkv-server with its ExecStart command line,
#    --data and --listen replaced by a temporary directory and a free
#    loopback port, and PUT and GET over it with curl (examples/rebase.sh);
# 6. apt-get purge the packages, on success and on failure.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PKGS="libetagkv0 libetagkv-dev etagkv etagkv-server"

# The Debian toolchain, the build dependencies (debian/control) and what
# step 4 and 5 use.
"$ROOT/tools/install.sh" package build-essential debhelper dpkg-dev \
    fakeroot lintian cmake pkg-config liblmdb-dev libxxhash-dev \
    libmicrohttpd-dev libjansson-dev libcurl4-openssl-dev curl man-db

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
for p in $PKGS; do
    if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
        echo "package: $p is installed already; remove it first" >&2
        exit 1
    fi
done

work=$(mktemp -d "${TMPDIR:-/tmp}/etagkv-package.XXXXXX")
installed=0
cleanup() {
    if [ "$installed" -eq 1 ]; then
        # $PKGS is a word list on purpose.
        # shellcheck disable=SC2086
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq \
            $PKGS >/dev/null || echo "package: apt-get purge failed" >&2
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

step() { echo "package: $*"; }

# 1. Build.
mkdir "$work/src"
(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard |
    xargs -0 cp --parents -t "$work/src" 2>/dev/null) || true
[ -f "$work/src/debian/control" ] || {
    echo "package: copying the tree failed" >&2
    exit 1
}
step "dpkg-buildpackage -us -uc -b"
if ! (cd "$work/src" && dpkg-buildpackage -us -uc -b) >"$work/build.log" 2>&1
then
    tail -n 60 "$work/build.log" >&2
    echo "package: dpkg-buildpackage failed" >&2
    exit 1
fi
if grep -E '\.[ch]:[0-9]+:[0-9]+: warning:' "$work/build.log" >&2; then
    echo "package: the package build gave compiler warnings" >&2
    exit 1
fi
ls "$work"/*.deb

# 2. lintian.
step "lintian"
lintian --fail-on error,warning --info "$work"/*.changes

# 3. Install.
# The four packages, not their -dbgsym companions.
step "apt-get install ./*.deb"
installed=1
debs=""
for p in $PKGS; do
    debs="$debs ./${p}_*.deb"
done
# $debs is a list of globs on purpose.
# shellcheck disable=SC2086
(cd "$work" && $SUDO env DEBIAN_FRONTEND=noninteractive \
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq $debs >/dev/null)

# 4. Build the examples against the installed package, and run them.
step "examples with pkg-config"
ex="$ROOT/examples"
mkdir "$work/pc" "$work/pc/run"
# shellcheck disable=SC2046 # pkg-config prints several words
cc -std=c11 -Wall -Wextra -Werror $(pkg-config --cflags etagkv) \
    "$ex/quickstart.c" $(pkg-config --libs etagkv) -o "$work/pc/quickstart"
# shellcheck disable=SC2046
cc -std=c11 -Wall -Wextra -Werror -pthread $(pkg-config --cflags etagkv) \
    "$ex/counter.c" $(pkg-config --libs etagkv) -o "$work/pc/counter"
(cd "$work/pc/run" && "$work/pc/quickstart" && "$work/pc/counter")

step "examples with find_package(etagkv)"
cmake -S "$ex" -B "$work/cm" >/dev/null
cmake --build "$work/cm" >/dev/null
if ldd "$work/cm/example_counter" | grep -q libetagkv; then
    echo "package: example_counter, linked with etagkv::etagkv_static," \
        "loads libetagkv.so" >&2
    exit 1
fi
(cd "$work/cm" && ctest --output-on-failure)

step "manual pages, the CLI"
man -w etagkv
man -w 3 etagkv
man -w 8 etagkv-server
echo hello | etagkv -d "$work/pc/run/data" put greeting -
[ "$(etagkv -d "$work/pc/run/data" get greeting)" = hello ]

# 5. The server, as the installed unit starts it.
unit=$(dpkg -L etagkv-server | grep '/systemd/system/etagkv-server.service$')
# Every directive known to this systemd, the binary and the man page there.
if command -v systemd-analyze >/dev/null; then
    step "systemd-analyze verify $unit"
    systemd-analyze verify "$unit"
else
    step "no systemd-analyze here: the unit's directives are not checked"
fi
cmd=$(sed -n 's/^ExecStart=//p' "$unit")
step "the unit's ExecStart: $cmd"
# Drop --data DIR and --listen ADDR: with-server.sh gives its own.
server=$(echo "$cmd" | sed -e 's/--data [^ ]*//' -e 's/--listen [^ ]*//')
# shellcheck disable=SC2086 # $server is a command line
sh "$ex/with-server.sh" "$work/server-data" $server -- sh "$ex/rebase.sh"

# 6. The EXIT trap purges the packages.
step "all checks passed; purging the packages"
