#!/usr/bin/env bash
# ffarm's one entry point for developers and first-time users (Debian 12; see FFmpeg below).
#
#   ./dev.sh serve        install what is missing, build, and run the farm on the embedded default
#   ./dev.sh test [ARG…]  install what is missing and run every check and test; any ARGs go to
#                         `cargo nextest run`: `./dev.sh test store_conformance` runs only the
#                         tests whose names contain store_conformance (and no doc tests)
#   ./dev.sh setup        only install what is missing
#   ./dev.sh bench        run the benchmarks (see BENCHMARKS.md)
#
# Installs only what is absent: Debian packages through apt-get (with sudo when not root)
# and, if there is no Rust toolchain, rustup's stable toolchain. It first checks that the
# system's FFmpeg is one ffarm is built for, and stops with a message if it is not.
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

# The FFmpeg ffarm is built and tested with: 5.1, whose libavcodec is 59.37 or a later 59.x
# (Debian 12's). Its FFmpeg code uses fields FFmpeg 7 removed (AVFrame.pkt_duration,
# AVCodecContext.channels/channel_layout) and the channel-layout API (ch_layout) that FFmpeg
# 4.4 and 5.0 lack; FFmpeg 6 has not been tried. FFARM_ANY_FFMPEG=1 skips the check.
SUPPORTED_FFMPEG="FFmpeg 5.1 (libavcodec 59.37 or a later 59.x), as Debian 12 (bookworm) ships it"

unsupported_ffmpeg() {
  {
    echo "dev.sh: $1"
    echo "ffarm is built and tested with $SUPPORTED_FFMPEG."
    echo "FFmpeg 7 removed fields ffarm's FFmpeg code uses, FFmpeg 4.4 and 5.0 lack the"
    echo "channel-layout API it needs, and FFmpeg 6 has not been tried. Use Debian 12, or set"
    echo "FFARM_ANY_FFMPEG=1 to try this FFmpeg anyway."
  } >&2
  exit 1
}

# Which FFmpeg release a libavcodec major version belongs to.
ffmpeg_release() {
  case "$1" in
  58) echo "4.x" ;;
  59) echo "5.x" ;;
  60) echo "6.x" ;;
  61) echo "7.x" ;;
  *) echo "with libavcodec $1" ;;
  esac
}

# Checks the FFmpeg libraries a build would use: the installed libavcodec (pkg-config) or,
# before it is installed, the version apt would install, so nothing is installed for an
# FFmpeg ffarm cannot build on.
check_ffmpeg() {
  [ "${FFARM_ANY_FFMPEG:-}" = 1 ] && return 0
  local v
  if command -v pkg-config >/dev/null && v=$(pkg-config --modversion libavcodec 2>/dev/null); then
    local major=${v%%.*} rest=${v#*.}
    local minor=${rest%%.*}
    if [ "$major" != 59 ] || [ "$minor" -lt 37 ]; then
      unsupported_ffmpeg "this system's libavcodec is $v (FFmpeg $(ffmpeg_release "$major"))."
    fi
    return 0
  fi
  v=$(apt-cache policy libavcodec-dev 2>/dev/null | sed -n 's/^ *Candidate: *//p')
  case "$v" in
  "" | "(none)") unsupported_ffmpeg "apt has no libavcodec-dev package to install." ;;
  esac
  v=${v#*:}  # drop the epoch
  v=${v%%-*} # and the Debian revision
  case "$v" in
  5.1 | 5.1.*) ;;
  *) unsupported_ffmpeg "apt would install FFmpeg $v (package libavcodec-dev)." ;;
  esac
}

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
  command -v apt-get >/dev/null || { echo "dev.sh: needs a Debian system (apt-get)" >&2; exit 1; }
  check_ffmpeg
  install_packages "${PACKAGES[@]}"
  check_ffmpeg
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
    log "cargo nextest run --no-fail-fast${*:+ $*}"
    cargo nextest run --no-fail-fast "$@"
    [ $# -gt 0 ] || cargo test --doc
  else
    log "cargo test --no-fail-fast${*:+ $*}"
    cargo test --no-fail-fast "$@"
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
  test) setup; run_tests "$@" ;;
  bench)
    setup
    assets/make-fixtures.sh --bench
    for b in "${@:-engine}"; do
      log "cargo bench --bench $b"
      cargo bench --bench "$b"
    done
    ;;
  *)
    sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0" # the opening comment, whatever its length
    exit 2
    ;;
esac
