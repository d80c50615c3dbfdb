#!/usr/bin/env bash
# Builds a release of catty for this machine into dist/ (`just release`, or run it directly):
#   catty-VERSION-TARGET.tar.gz   the binary, in a directory of the same name
#   catty-VERSION-TARGET.tar.gz.sha256
#   install.sh                    npm/install.sh with VERSION stamped in
#   catty-cli-VERSION.tgz, catty-PLATFORM-VERSION.tgz   the npm packages (`npm pack`)
# VERSION is Cargo.toml's; the build is `cargo build --release --locked` (CARGO_TARGET_DIR is
# honoured, so an existing release build is reused). Needs cargo, node and npm.
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(sed -n '/^\[package\]/,/^\[/s/^version = "\(.*\)"$/\1/p' Cargo.toml)
[[ -n $version ]] || { echo "release: no version in Cargo.toml" >&2; exit 1; }
target=$(rustc -vV | sed -n 's/^host: //p')
case $target in
    x86_64-unknown-linux-gnu) platform=linux-x64 ;;
    aarch64-unknown-linux-gnu) platform=linux-arm64 ;;
    *) echo "release: no npm package for $target (npm/catty/package.json lists the platforms)" >&2; exit 1 ;;
esac

cargo build --release --locked
binary=${CARGO_TARGET_DIR:-target}/release/catty

rm -rf dist
mkdir dist
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

# The tarball is reproducible: fixed owner, order and times (the commit's), no gzip name.
name=catty-$version-$target
mkdir "$stage/$name"
cp "$binary" "$stage/$name/catty"
epoch=$(git log -1 --format=%ct 2>/dev/null || echo 0)
tar -C "$stage" --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" \
    -cf - "$name" | gzip -9n >"dist/$name.tar.gz"
(cd dist && sha256sum "$name.tar.gz" >"$name.tar.gz.sha256")

sed "s/^release_version=\"\" # stamped by npm\/release.sh$/release_version=\"$version\"/" \
    npm/install.sh >dist/install.sh
grep -q "^release_version=\"$version\"$" dist/install.sh ||
    { echo "release: could not stamp the version into install.sh" >&2; exit 1; }
chmod 755 dist/install.sh

node npm/stage.js "$version" "$platform" "$binary" "$stage/npm"
for package in cli "$platform"; do
    npm pack --silent --pack-destination dist "$stage/npm/$package" >/dev/null
done

echo "release: catty $version for $target in dist/:"
ls -l dist
