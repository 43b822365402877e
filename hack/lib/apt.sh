# Sourced by hack/tools/*.sh: install Debian packages the same way everywhere.
#   apt_install NAME PKG...   NAME labels the messages; PKG... are installed together.
# Needs root or sudo. Installs from the current package lists and runs `apt-get update`
# only when that fails. A temporary policy-rc.d stops packages from starting services
# (there is no init system here; the tests start their own servers). Waits for the dpkg lock.

apt_install() {
  local name=$1 sudo=()
  shift
  if ((EUID != 0)); then
    if command -v sudo >/dev/null 2>&1; then sudo=(sudo); else
      echo "$name: need root (or sudo) to apt-get install $*" >&2
      return 1
    fi
  fi
  local policy=/usr/sbin/policy-rc.d created_policy=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
    "${sudo[@]}" chmod +x "$policy"
    created_policy=1
  fi
  local apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600)
  local rc=0
  if ! "${apt[@]}" install -y -qq --no-install-recommends "$@" >/dev/null; then
    echo "$name: refreshing package lists" >&2
    "${apt[@]}" update -qq >/dev/null && "${apt[@]}" install -y -qq --no-install-recommends "$@" >/dev/null || rc=$?
  fi
  if ((created_policy)); then "${sudo[@]}" rm -f "$policy"; fi
  return "$rc"
}
