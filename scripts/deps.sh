# Sourced by the other scripts: installs the Debian packages rondo needs, if any are missing.
# Usage: rondo_ensure_packages pkg...
rondo_ensure_packages() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "== installing missing Debian packages: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}

RONDO_BUILD_PACKAGES=(cmake ninja-build g++ make pkg-config liburing-dev libfmt-dev)
RONDO_TEST_PACKAGES=(catch2 clang-19 libclang-rt-19-dev libbenchmark-dev libboost-dev
                     libconcurrentqueue-dev libreaderwriterqueue-dev spin nats-server libnats-dev)
