#!/usr/bin/env bash
# ffarm's one entry point for developers and first-time users (Debian 12; see FFmpeg below).
#
#   ./dev.sh serve        install what is missing, build, and run the farm on the embedded default
#   ./dev.sh test [ARG…]  install what is missing and run every check and test; any ARGs go to
#                         `cargo nextest run`: `./dev.sh test store_conformance` runs only the
#                         tests whose names contain store_conformance (and no doc tests)
#   ./dev.sh setup        only install what is missing
#   ./dev.sh bench [B…]   run the benchmarks B: engine (the default), worker, store, split,
#                         outputs, fuzz (see BENCHMARKS.md)
#
# Installs only what is absent: Debian packages through apt-get (with sudo when not root)
# and, if there is no Rust toolchain, rustup's stable toolchain. It first checks that the
# system's FFmpeg is one ffarm is built for, and stops with a message if it is not. The
# PostgreSQL tests use the server at FFARM_TEST_PG_URL (by default
# postgres://postgres@127.0.0.1:5432/test); when nothing answers there, `test` runs them on a
# throwaway cluster of its own under target/ (installing Debian's postgresql if need be),
# stopped when the run ends.
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
# server (moto), the API fuzzer that checks every endpoint against the OpenAPI document
# (schemathesis) and the Standard Webhooks library that checks signed deliveries — and Chromium for the browser tests of the web page (driven by
# playwright-core from npm, which downloads no browser: the tests run /usr/bin/chromium).
TEST_PACKAGES=(python3-venv chromium)
MOTO="moto[server]==5.2.5"
SCHEMATHESIS="schemathesis==4.32.5"
# Checks the farm's signed deliveries as an independent Standard Webhooks implementation.
STANDARDWEBHOOKS="standardwebhooks==1.3.0"

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
  if ! "$venv/bin/python" -c "import standardwebhooks" 2>/dev/null; then
    log "installing $STANDARDWEBHOOKS (verifies signed deliveries independently)"
    "$venv/bin/pip" install -q "$STANDARDWEBHOOKS"
  fi
  browser_test_packages
}

# playwright-core, as tests/browser/package-lock.json pins it (it downloads no browser).
browser_test_packages() {
  node_tools
  npm_install tests/browser "playwright-core for the browser tests"
}

# The PostgreSQL server the tests use, as store_harness.rs reads it.
TEST_PG_URL=${FFARM_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/test}

# Whether something accepts TCP connections at HOST PORT.
tcp_answers() {
  # shellcheck disable=SC2016 # the inner bash expands them
  timeout 3 bash -c ': <>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null
}

# Whether a PostgreSQL server answers at a postgres:// URL's host and port (user, password,
# database and parameters aside): pg_isready when there is one, else a TCP connection (or the
# socket file, for a host that is a socket directory).
pg_answers() {
  local hostport=${1#*://}
  hostport=${hostport%%[/?]*}
  hostport=${hostport##*@}
  local host port=5432
  if [[ $hostport == \[* ]]; then # [IPv6]:port
    host=${hostport%%]*}
    host=${host#\[}
    [[ $hostport != *]:* ]] || port=${hostport##*]:}
  else
    host=${hostport%%:*}
    [[ $hostport != *:* ]] || port=${hostport##*:}
  fi
  host=${host//%2[Ff]//}
  host=${host:-localhost}
  if command -v pg_isready >/dev/null; then
    pg_isready -q -h "$host" -p "$port" -t 3
  elif [[ $host == /* ]]; then
    [ -S "$host/.s.PGSQL.$port" ]
  else
    tcp_answers "$host" "$port"
  fi
}

# The directory of the newest PostgreSQL's server programs: Debian keeps them out of PATH, in
# /usr/lib/postgresql/VERSION/bin.
pg_bindir() {
  local dir
  dir=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  if [ -x "$dir/initdb" ]; then
    echo "$dir"
  elif command -v initdb >/dev/null; then
    dirname "$(command -v initdb)"
  else
    echo "dev.sh: no PostgreSQL server programs (initdb) after installing postgresql" >&2
    exit 1
  fi
}

# initdb and postgres refuse to run as root: as root, the test cluster is the postgres user's
# (which Debian's package creates), in the cluster's directory.
as_cluster_user() {
  if [ "$(id -u)" = 0 ]; then
    (cd "$TEST_PG_DIR" && runuser -u postgres -- "$@")
  else
    "$@"
  fi
}

# A directory for the test cluster under DIR, owned by the user it runs as, or nothing when
# that user cannot write there (a checkout in root's own home is closed to postgres) or a
# socket in it would pass the 107 bytes a Unix socket's path may have.
cluster_dir_in() {
  local dir
  dir=$(mktemp -d "$1/test-postgres.XXXXXX")
  [ "$(id -u)" != 0 ] || chown postgres: "$dir"
  if [ ${#dir} -le 80 ] && TEST_PG_DIR=$dir as_cluster_user test -w "$dir"; then
    echo "$dir"
  else
    rm -rf "$dir"
  fi
}

# Points the tests at a PostgreSQL server: the one at FFARM_TEST_PG_URL when it answers, else
# a throwaway cluster of this run's own, stopped when the run ends however it ends.
test_postgres() {
  if pg_answers "$TEST_PG_URL"; then
    log "PostgreSQL: the server at FFARM_TEST_PG_URL answers"
    return
  fi
  install_packages postgresql
  PG_BIN=$(pg_bindir)
  mkdir -p target
  TEST_PG_DIR=$(cluster_dir_in "$PWD/target")
  [ -n "$TEST_PG_DIR" ] || TEST_PG_DIR=$(cluster_dir_in "${TMPDIR:-/tmp}")
  if [ -z "$TEST_PG_DIR" ]; then
    echo "dev.sh: the test cluster's user can write neither in target/ nor in ${TMPDIR:-/tmp}" >&2
    exit 1
  fi
  trap stop_test_postgres EXIT
  trap 'exit 129' HUP
  trap 'exit 130' INT
  trap 'exit 143' TERM
  local port=5432
  while [ "$port" = 5432 ] || tcp_answers 127.0.0.1 "$port"; do
    port=$((20000 + RANDOM % 10000)) # below the ephemeral ports the tests' own servers get
  done
  log "PostgreSQL: nothing answers at FFARM_TEST_PG_URL; starting a throwaway cluster on port $port"
  if ! as_cluster_user "$PG_BIN/initdb" -D "$TEST_PG_DIR/data" -U postgres --auth=trust \
    --encoding=UTF8 --locale=C.UTF-8 --no-sync >"$TEST_PG_DIR/initdb.log" 2>&1; then
    cat "$TEST_PG_DIR/initdb.log" >&2
    exit 1
  fi
  cat >>"$TEST_PG_DIR/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$TEST_PG_DIR'
# Deleted when the run ends, the cluster need not survive a crash: without fsync, no commit
# the tests make waits for the disk.
fsync = off
CONF
  if ! as_cluster_user "$PG_BIN/pg_ctl" -D "$TEST_PG_DIR/data" -l "$TEST_PG_DIR/server.log" \
    -w start >/dev/null; then
    cat "$TEST_PG_DIR/server.log" >&2
    exit 1
  fi
  # The database the tests' URL names; each test creates a database of its own beside it.
  as_cluster_user "$PG_BIN/createdb" -h "$TEST_PG_DIR" -p "$port" -U postgres test
  export FFARM_TEST_PG_URL="postgres://postgres@127.0.0.1:$port/test"
}

# Stops the test cluster at once (nothing in it is kept) and deletes it.
stop_test_postgres() {
  as_cluster_user "$PG_BIN/pg_ctl" -D "$TEST_PG_DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$TEST_PG_DIR"
}

run_tests() {
  test_tools
  log "fixtures"
  assets/make-fixtures.sh
  log "cargo fmt --check"
  cargo fmt --all -- --check
  log "cargo clippy --all-targets -- -D warnings"
  cargo clippy --all-targets -- -D warnings
  test_postgres
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
    # The fuzzing run mutates the test fixtures.
    case " $* " in *" fuzz "*) assets/make-fixtures.sh ;; esac
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
