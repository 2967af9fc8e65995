# shellcheck shell=bash
# Shared set-up steps for .ci/start and .ci/test. Every step installs what is
# missing and skips what is already there, so both commands are idempotent.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# Must equal the `wasm-bindgen` crate pinned in Cargo.toml / Cargo.lock.
WASM_BINDGEN_VERSION=0.2.130
AIOSMTPD_VERSION=1.4.6
MOTO_VERSION=5.2.5
export PATH="$HOME/.cargo/bin:$ROOT/node_modules/.bin:$PATH"
# Read at compile time by leptos_config; also set in .cargo/config.toml.
export LEPTOS_OUTPUT_NAME=ecr-portal
export CARGO_TERM_COLOR=never

step() { printf '\n==> %s\n' "$*"; }

# ensure_apt PACKAGE... (each package provides the command of the same name)
ensure_apt() {
  local missing=() p
  for p in "$@"; do
    command -v "$p" >/dev/null || missing+=("$p")
  done
  if ((${#missing[@]})); then
    step "apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

ensure_rust_target() {
  if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    step "rustup target add wasm32-unknown-unknown"
    rustup target add wasm32-unknown-unknown
  fi
}

# `cargo install wasm-bindgen-cli --locked` fails against the registry served here
# (its lock pins a webpki-roots release that is absent), so build it from the
# unpacked crate with that one dependency moved to a release that is present.
ensure_wasm_bindgen() {
  if command -v wasm-bindgen >/dev/null &&
    [[ "$(wasm-bindgen --version)" == "wasm-bindgen $WASM_BINDGEN_VERSION" ]]; then
    return
  fi
  step "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (about 2-3 minutes)"
  local crate
  crate=$(ls "$HOME"/.cargo/registry/cache/*/wasm-bindgen-cli-$WASM_BINDGEN_VERSION.crate 2>/dev/null | head -1 || true)
  if [[ -z "$crate" ]]; then
    # Downloads the .crate into the registry cache, then fails on the lock; expected.
    (cd /tmp && cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --locked >/dev/null 2>&1) || true
    crate=$(ls "$HOME"/.cargo/registry/cache/*/wasm-bindgen-cli-$WASM_BINDGEN_VERSION.crate | head -1)
  fi
  local dir
  dir=$(mktemp -d)
  tar -xzf "$crate" -C "$dir"
  (
    cd "$dir/wasm-bindgen-cli-$WASM_BINDGEN_VERSION"
    cargo update -p webpki-roots --precise 1.0.10 >/dev/null 2>&1 || true
    CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
      cargo install --path . --locked --quiet
  )
  rm -rf "$dir"
}

ensure_npm() {
  if [[ ! -x node_modules/.bin/sass || ! -x node_modules/.bin/wasm-opt ]]; then
    step "npm ci (sass, binaryen)"
    npm ci --no-audit --no-fund --loglevel=error
  fi
}

ensure_npm_end2end() {
  if [[ ! -d end2end/node_modules/@playwright/test || ! -d end2end/node_modules/oauth2-mock-server \
    || ! -d end2end/node_modules/@axe-core/playwright ]]; then
    step "npm ci in end2end/ (Playwright, oauth2-mock-server, axe-core)"
    (cd end2end && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

ensure_moto() {
  if [[ ! -x .venv/bin/moto_server ]] || ! .venv/bin/python -c "import moto,sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null \
    || ! .venv/bin/python -c "import aiosmtpd" 2>/dev/null; then
    step "python venv with moto $MOTO_VERSION and aiosmtpd (the tests' SMTP server)"
    python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check "moto[ecr,sts,iam]==$MOTO_VERSION" flask flask-cors \
      "aiosmtpd==$AIOSMTPD_VERSION"
  fi
}

# Starts moto on 127.0.0.1:$1 unless something already answers there.
start_moto() {
  local port=$1 log=$2
  if curl -fsS "http://127.0.0.1:$port/moto-api/" >/dev/null 2>&1; then
    return
  fi
  .venv/bin/moto_server -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
  MOTO_PID=$!
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$port/moto-api/" >/dev/null 2>&1 && return
    sleep 0.1
  done
  echo "moto did not start on port $port; see $log" >&2
  exit 1
}

# Builds the site into target/site and the server binary, both in the given
# cargo profile for the server ("dev" or "release"). The wasm always uses the
# small wasm-release profile.
build_site() {
  local server_profile=${1:-dev}
  local name=ecr-portal site=target/site pkg=target/site/pkg
  step "building the site (sass, wasm, wasm-bindgen, wasm-opt)"
  mkdir -p "$pkg"
  cp -r public/. "$site/"
  sass style/main.scss --no-source-map --style=compressed >"$pkg/$name.css"
  cargo build --package=app --lib --target=wasm32-unknown-unknown \
    --no-default-features --features=hydrate --profile=wasm-release --target-dir=target/front
  local wasm=target/front/wasm32-unknown-unknown/wasm-release/app.wasm
  # wasm-bindgen + wasm-opt take a minute or more: skip them when the wasm is unchanged.
  if [[ ! -f "$pkg/$name.wasm" || ! -f "$pkg/$name.js" || "$wasm" -nt "$pkg/$name.wasm" ]]; then
    wasm-bindgen --target=web --out-name=$name --out-dir="$pkg" --no-typescript "$wasm"
    # npm binaryen 132: Debian's binaryen 108 emits a table that fails to instantiate.
    "$ROOT/node_modules/.bin/wasm-opt" -Oz --enable-bulk-memory --enable-nontrapping-float-to-int \
      "$pkg/${name}_bg.wasm" -o "$pkg/$name.wasm"
    rm -f "$pkg/${name}_bg.wasm"
  fi
  # Served precompressed (leptos_axum picks .br or .gz by Accept-Encoding); brotli when installed.
  local f
  for f in "$pkg/$name.wasm" "$pkg/$name.js" "$pkg/$name.css"; do
    if [[ ! -f "$f.gz" || "$f" -nt "$f.gz" ]]; then
      gzip -9 -k -f "$f"
      if command -v brotli >/dev/null; then brotli -q 11 -f -k "$f"; fi
    fi
  done
  if [[ "$server_profile" == "from-tests" ]]; then
    # `cargo test` already built target/debug/ecr-portal for the integration
    # tests; a separate `cargo build` would resolve features without the
    # dev-dependencies and rebuild half the dependency tree.
    return
  fi
  step "building the server ($server_profile)"
  cargo build --package=server --bin=ecr-portal --profile="$server_profile"
}
