# Sourced by the tools/ scripts: one persistent target directory outside the
# clone, so RocksDB's C++ is compiled once per machine and shared by CI runs,
# later sessions, tests and benchmarks.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/weir/target}"
mkdir -p "$CARGO_TARGET_DIR"
