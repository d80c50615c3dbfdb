# Everyday commands. The README's commands work without `just` too.

# run every test (what CI runs, minus the package installs)
test:
    cargo test

# formatting and lints, as CI checks them
lint:
    cargo fmt --all -- --check
    cargo clippy --all-targets -- -D warnings

# stream throughput and runtime memory, next to a bare PTY; catty against ssh and a bare PTY
bench:
    cargo bench --bench stream
    cargo bench --bench peers

# a runtime on localhost:8080 running a shell, for experiments (no token: trusted machine only)
exec:
    cargo run -- exec --insecure-no-token --addr 127.0.0.1:8080 --workspace /tmp/catty-workspace -- bash -l

# build and push the machine image to Fly's registry (README, "The machine image")
image label=`git rev-parse --short HEAD`:
    fly deploy --build-only --push --image-label {{label}}
    @echo "CATTY_IMAGE=registry.fly.io/catty-exec:{{label}}"

# dist/: the release tarball with its .sha256, install.sh and the npm packages (README, "Install")
release:
    bash npm/release.sh
