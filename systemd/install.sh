#!/usr/bin/env bash
# Install bonderd as a systemd service (systemd/README.md).
#
#   sudo systemd/install.sh                 install on this machine
#   systemd/install.sh --root DIR           stage into DIR instead of / (DESTDIR-style: a
#                                           package build, or a test); nothing is activated
#
# Options:
#   --root DIR     install below DIR (default /). Only with / are the user, the folders and
#                  the unit activated (systemd-sysusers, systemd-tmpfiles, daemon-reload).
#   --offline      build the venv from uv's cache only (no network)
#   --with-broker  also install the example Mosquitto configuration and ACL into
#                  /etc/mosquitto (never over existing files)
#   -h, --help     this text
#
# What goes where:
#   /opt/bonderd/                 the code (daemon/, drivers/, recipes/, config/, uv.lock, ...)
#   /opt/bonderd/.venv/           a venv with exactly the locked dependencies (uv.lock, no dev
#                                 tools) and bonderd itself; bin/bonderd, bin/bonderctl
#   /etc/systemd/system/bonderd.service
#   /usr/lib/sysusers.d/bonderd.conf, /usr/lib/tmpfiles.d/bonderd.conf
#   /etc/bonderd/bonderd.toml     the example configuration, only if there is none yet
#   /usr/share/doc/bonderd/       README.md, docs/, systemd/README.md (the unit's
#                                 Documentation=), bonderd.toml.example, mosquitto/
#
# The service is not enabled or started: the configuration must name the line's devices and
# broker first (the steps are printed at the end).
set -euo pipefail

SRC="$(cd "$(dirname "$0")/.." && pwd)"
ROOT=/
OFFLINE=()
WITH_BROKER=0

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --root) ROOT="${2:?--root needs a directory}"; shift 2 ;;
    --root=*) ROOT="${1#--root=}"; shift ;;
    --offline) OFFLINE=(--offline); shift ;;
    --with-broker) WITH_BROKER=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done

ROOT="$(mkdir -p "$ROOT" && cd "$ROOT" && pwd)"
R="${ROOT%/}"          # prefix for every installed path ("" for /)
OPT="$R/opt/bonderd"
DOC="$R/usr/share/doc/bonderd"
say() { echo "install.sh: $*" >&2; }

# --- Python: the system's, so that the unit's ProtectHome= cannot hide the interpreter -----
PY=""
for cand in /usr/bin/python3 "$(command -v python3 || true)"; do
  [ -n "$cand" ] && [ -x "$cand" ] || continue
  if "$cand" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    PY="$cand"; break
  fi
done
if [ -z "$PY" ]; then
  say "needs Python >= 3.11 (Debian: apt-get install python3)"; exit 1
fi
case "$(readlink -f "$PY")" in
  /home/*|/root/*) say "warning: $PY lives under /home or /root, which the unit's ProtectHome=yes hides from the service; install a system Python (apt-get install python3)" ;;
esac

# --- uv, pinned and hash-checked, as ./dev fetches it ---------------------------------------
UV="$SRC/.tools/uv"
WANT="$(sed -n 's/^UV_VERSION = "\(.*\)"/\1/p' "$SRC/tools/bootstrap_uv.py")"
if [ ! -x "$UV" ] || [ "$("$UV" --version | cut -d' ' -f2)" != "$WANT" ]; then
  "$PY" "$SRC/tools/bootstrap_uv.py" "$SRC/.tools"
fi
export UV_PYTHON_DOWNLOADS=never UV_PYTHON="$PY"

# --- the code --------------------------------------------------------------------------------
say "code -> $OPT"
mkdir -p "$OPT"
CODE=(daemon drivers recipes config docs systemd tools pyproject.toml hatch_build.py uv.lock README.md)
for item in "${CODE[@]}"; do rm -rf "${OPT:?}/$item"; done   # no stale modules of an older version
# Built modules stay behind: the venv's wheel compiles its own (hatch_build.py, ADR 0186).
tar -C "$SRC" --exclude=__pycache__ --exclude='*.pyc' --exclude='*.so' -cf - "${CODE[@]}" \
  | tar -C "$OPT" -xf -

# --- the venv: built beside the old one, swapped in when complete ----------------------------
say "venv (uv.lock, no dev tools) -> $OPT/.venv"
rm -rf "$OPT/.venv.new"
"$UV" venv --quiet --relocatable --python "$PY" "$OPT/.venv.new"
UV_PROJECT_ENVIRONMENT="$OPT/.venv.new" "$UV" sync --quiet --frozen --no-dev --no-editable \
  "${OFFLINE[@]}" --project "$OPT"
rm -rf "$OPT/.venv.old"
[ -e "$OPT/.venv" ] && mv "$OPT/.venv" "$OPT/.venv.old"
mv "$OPT/.venv.new" "$OPT/.venv"
rm -rf "$OPT/.venv.old"
"$OPT/.venv/bin/bonderd" --version >/dev/null

# --- systemd, documentation, configuration ---------------------------------------------------
install -D -m 0644 "$SRC/systemd/bonderd.service" "$R/etc/systemd/system/bonderd.service"
install -D -m 0644 "$SRC/systemd/sysusers.d/bonderd.conf" "$R/usr/lib/sysusers.d/bonderd.conf"
install -D -m 0644 "$SRC/systemd/tmpfiles.d/bonderd.conf" "$R/usr/lib/tmpfiles.d/bonderd.conf"

rm -rf "$DOC"
mkdir -p "$DOC"
tar -C "$SRC" -cf - README.md docs systemd/README.md | tar -C "$DOC" -xf -
install -m 0644 "$SRC/systemd/bonderd.toml" "$DOC/bonderd.toml.example"
install -D -m 0644 -t "$DOC/mosquitto" "$SRC/systemd/mosquitto/bonderd.conf" \
  "$SRC/systemd/mosquitto/bonderd.acl"

install -d -m 0750 "$R/etc/bonderd"
if [ -e "$R/etc/bonderd/bonderd.toml" ]; then
  say "kept the existing $R/etc/bonderd/bonderd.toml (the new example: $DOC/bonderd.toml.example)"
else
  install -m 0640 "$SRC/systemd/bonderd.toml" "$R/etc/bonderd/bonderd.toml"
  say "example configuration -> $R/etc/bonderd/bonderd.toml (edit it: devices, broker)"
fi

if [ "$WITH_BROKER" = 1 ]; then
  for pair in "bonderd.conf:etc/mosquitto/conf.d/bonderd.conf" "bonderd.acl:etc/mosquitto/bonderd.acl"; do
    src="$SRC/systemd/mosquitto/${pair%%:*}" dst="$R/${pair#*:}"
    if [ -e "$dst" ]; then say "kept the existing $dst"; else install -D -m 0644 "$src" "$dst"; fi
  done
fi

# --- activation: only on the machine itself ---------------------------------------------------
if [ "$R" = "" ]; then
  systemd-sysusers /usr/lib/sysusers.d/bonderd.conf
  systemd-tmpfiles --create /usr/lib/tmpfiles.d/bonderd.conf
  chgrp bonderd /etc/bonderd /etc/bonderd/bonderd.toml
  if [ -d /run/systemd/system ]; then
    systemctl daemon-reload
  else
    say "systemd is not running here: daemon-reload skipped"
  fi
  if command -v systemd-analyze >/dev/null; then
    systemd-analyze verify /etc/systemd/system/bonderd.service
  fi
fi

cat >&2 <<EOF
install.sh: installed bonderd $("$OPT/.venv/bin/bonderd" --version | cut -d' ' -f2) under ${R:-/}
Next:
  1. edit /etc/bonderd/bonderd.toml: [devices.*] addresses and ports, [mqtt] broker
     (docs/configuration.md, docs/devices.md); the password in a drop-in:
     systemctl edit bonderd  ->  [Service] Environment=BONDERD_MQTT__PASSWORD=...
  2. identify the chip's thermal model: /opt/bonderd/.venv/bin/bonderd tune --config /etc/bonderd/bonderd.toml --write
  3. systemctl enable --now bonderd && systemctl status bonderd
EOF
