#!/bin/sh
# Installs catty from a release: fetches this machine's catty-VERSION-TARGET.tar.gz and its
# .sha256 from a directory or a base URL, checks the SHA-256 before extracting anything, and
# puts the binary in a directory (default ~/.local/bin). npm/release.sh writes it into dist/
# with the version stamped in.
# `sh install.sh --help` lists the options.
set -eu

release_version="" # stamped by npm/release.sh

say() { printf 'install.sh: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }
usage() {
    cat >&2 <<'EOF'
usage: sh install.sh [--prefix DIR] [--from DIR|URL] [--version VERSION]
  --prefix DIR    where the catty binary goes (env CATTY_INSTALL_DIR; default ~/.local/bin)
  --from DIR|URL  where the release files are (env CATTY_RELEASE_URL; default: this script's
                  directory); a URL must be https:// or file://
  --version V     the release (env CATTY_VERSION; default: the one this script came with)
EOF
    exit 2
}

prefix=${CATTY_INSTALL_DIR:-${HOME:?HOME is not set}/.local/bin}
from=${CATTY_RELEASE_URL:-}
version=${CATTY_VERSION:-$release_version}
while [ $# -gt 0 ]; do
    case $1 in
        --prefix) [ $# -ge 2 ] || usage; prefix=$2; shift 2 ;;
        --from) [ $# -ge 2 ] || usage; from=$2; shift 2 ;;
        --version) [ $# -ge 2 ] || usage; version=$2; shift 2 ;;
        -h | --help) usage ;;
        *) say "unknown argument: $1"; usage ;;
    esac
done
[ -n "$version" ] || die "which release? pass --version VERSION (this install.sh was not stamped by npm/release.sh)"
[ -n "$from" ] || from=$(cd "$(dirname "$0")" && pwd)

case $(uname -s)-$(uname -m) in
    Linux-x86_64 | Linux-amd64) target=x86_64-unknown-linux-gnu ;;
    Linux-aarch64 | Linux-arm64) target=aarch64-unknown-linux-gnu ;;
    *) die "no release binary for $(uname -s) $(uname -m): build it instead with \`cargo install --locked --git <catty's repository URL> catty\`" ;;
esac
name=catty-$version-$target
archive=$name.tar.gz

work=$(mktemp -d "${TMPDIR:-/tmp}/catty-install.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# fetch FILE: copies $from/FILE into the work directory.
fetch() {
    case $from in
        https://* | file://*)
            if command -v curl >/dev/null 2>&1; then
                curl --proto '=https,file' --tlsv1.2 -fsSL -o "$work/$1" "$from/$1" ||
                    die "could not download $from/$1"
            elif command -v wget >/dev/null 2>&1 && [ "${from#https://}" != "$from" ]; then
                wget -q --https-only -O "$work/$1" "$from/$1" || die "could not download $from/$1"
            else
                die "downloading $from/$1 needs curl (or wget for https)"
            fi
            ;;
        *://*) die "refusing $from: only https:// or file:// URLs, or a directory" ;;
        *) [ -f "$from/$1" ] || die "no $1 in $from (pass --from DIR|URL)"
           cp "$from/$1" "$work/$1" ;;
    esac
}

if command -v sha256sum >/dev/null 2>&1; then hasher=sha256sum
elif command -v shasum >/dev/null 2>&1; then hasher="shasum -a 256"
else die "neither sha256sum nor shasum is installed: cannot check $archive"
fi

fetch "$archive"
fetch "$archive.sha256"
expected=$(cut -d ' ' -f 1 "$work/$archive.sha256" | head -n 1)
case $expected in
    *[!0-9a-f]* | "") die "$archive.sha256 holds no SHA-256: refusing to install" ;;
esac
[ ${#expected} -eq 64 ] || die "$archive.sha256 holds no SHA-256: refusing to install"
actual=$($hasher "$work/$archive" | cut -d ' ' -f 1)
if [ "$actual" != "$expected" ]; then
    die "$archive does not match its checksum (expected $expected, got $actual): refusing to install"
fi

tar -xzf "$work/$archive" -C "$work" "$name/catty" || die "$archive holds no $name/catty"
mkdir -p "$prefix"
# A new file renamed over the old one: a catty that is running keeps its own copy.
new=$prefix/.catty.new.$$
if ! { cp "$work/$name/catty" "$new" && chmod 755 "$new" && mv -f "$new" "$prefix/catty"; }; then
    rm -f "$new"
    die "could not write $prefix/catty"
fi
say "installed $("$prefix/catty" version) as $prefix/catty"
case :${PATH:-}: in
    *:"$prefix":*) ;;
    *) say "$prefix is not on your PATH: add it, or run $prefix/catty" ;;
esac
