#!/usr/bin/env bash
# ffarm's one entry point for developers and first-time users (Debian/Ubuntu).
#
#   ./dev.sh serve    install what is missing, build, and run the farm on the embedded default
#   ./dev.sh test     install what is missing and run every check and test
#   ./dev.sh setup    only install what is missing
#   ./dev.sh bench    run the benchmarks (see BENCHMARKS.md)
#
# Installs only what is absent: Debian packages through apt-get (with sudo when not root)
# and, if there is no Rust toolchain, rustup's stable toolchain.
set -euo pipefail
cd "$(dirname "$0")"

# Debian/Ubuntu packages: FFmpeg's development libraries and the tools the bindings need to
# build, plus the ffmpeg/ffprobe programs the fixture script and the tests use.
PACKAGES=(
  build-essential pkg-config clang libclang-dev
  libavcodec-dev libavformat-dev libavutil-dev libavfilter-dev libavdevice-dev
  libswscale-dev libswresample-dev
  ffmpeg
)
# What the tests use besides: python3-venv for the tools from PyPI — the S3-compatible test
# server (moto) and the API fuzzer that checks every endpoint against the OpenAPI document
# (schemathesis) — and Chromium for the browser tests of the web page (driven by
# playwright-core from npm, which downloads no browser: the tests run /usr/bin/chromium).
TEST_PACKAGES=(python3-venv chromium)
MOTO="moto[server]==5.2.5"
SCHEMATHESIS="schemathesis==4.32.5"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

install_packages() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}

setup() {
  command -v apt-get >/dev/null || { echo "dev.sh: needs a Debian/Ubuntu system (apt-get)" >&2; exit 1; }
  install_packages "${PACKAGES[@]}"
  if ! command -v cargo >/dev/null; then
    if [ -x "$HOME/.cargo/bin/cargo" ]; then
      export PATH="$HOME/.cargo/bin:$PATH"
    else
      install_packages curl ca-certificates
      log "installing the Rust toolchain (rustup)"
      curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c rustfmt,clippy
      export PATH="$HOME/.cargo/bin:$PATH"
    fi
  fi
  web_packages
}

# Node.js and npm (Debian's packages) unless they are already there (Node 18 or newer).
node_tools() {
  local packages=()
  command -v node >/dev/null || packages+=(nodejs)
  command -v npm >/dev/null || packages+=(npm)
  [ ${#packages[@]} -eq 0 ] || install_packages "${packages[@]}"
}

# `npm ci` in DIR when its node_modules is missing or its lockfile changed since.
npm_install() {
  local dir=$1 why=$2
  local stamp=$dir/node_modules/.ffarm-lockfile-sha256
  local want
  want=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    log "npm ci --prefix $dir ($why)"
    npm ci --prefix "$dir" --no-audit --no-fund
    echo "$want" >"$stamp"
  fi
}

# The page's front-end packages (the web terminal), compiled into the binary by build.rs.
web_packages() {
  node_tools
  npm_install web-vendor "xterm.js for the web page's terminal"
}

test_tools() {
  install_packages "${TEST_PACKAGES[@]}"
  local venv=target/test-tools/venv
  [ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
  if [ ! -x "$venv/bin/moto_server" ]; then
    log "installing $MOTO (the S3-compatible server the tests run on loopback)"
    "$venv/bin/pip" install -q "$MOTO"
  fi
  if [ ! -x "$venv/bin/schemathesis" ]; then
    log "installing $SCHEMATHESIS (fuzzes the API from its OpenAPI document)"
    "$venv/bin/pip" install -q "$SCHEMATHESIS"
  fi
  browser_test_packages
}

# playwright-core, as tests/browser/package-lock.json pins it (it downloads no browser).
browser_test_packages() {
  node_tools
  npm_install tests/browser "playwright-core for the browser tests"
}

run_tests() {
  test_tools
  log "fixtures"
  assets/make-fixtures.sh
  log "cargo fmt --check"
  cargo fmt --all -- --check
  log "cargo clippy --all-targets -- -D warnings"
  cargo clippy --all-targets -- -D warnings
  if cargo nextest --version >/dev/null 2>&1; then
    log "cargo nextest run"
    cargo nextest run --no-fail-fast
    cargo test --doc
  else
    log "cargo test"
    cargo test --no-fail-fast
  fi
}

serve() {
  log "building (release)"
  cargo build --release
  log "starting the farm: drop videos into ./data/buckets/media/in/ (Ctrl-C stops it)"
  exec target/release/ffarm serve "$@"
}

cmd=${1:-}
shift || true
case "$cmd" in
  setup) setup ;;
  serve) setup; serve "$@" ;;
  test) setup; run_tests ;;
  bench)
    setup
    assets/make-fixtures.sh --bench
    for b in "${@:-engine}"; do
      log "cargo bench --bench $b"
      cargo bench --bench "$b"
    done
    ;;
  *)
    sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
