#!/usr/bin/env bash
# Install (or update) the GridGate edge daemon on a gateway. Idempotent: running it again
# changes nothing that is already right.
#
#   sudo systemd/install-edge.sh                 # install from this checkout, enable, start
#   systemd/install-edge.sh --root /tmp/stage    # stage the files under a directory (no users,
#                                                # no systemctl): for packaging and for tests
set -euo pipefail

ROOT=""
SOURCE="$(cd "$(dirname "$0")/.." && pwd)"
while [ $# -gt 0 ]; do
  case "$1" in
    --root) ROOT="${2:?--root needs a directory}"; shift 2 ;;
    --help|-h) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "install-edge.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

changed=0
install_file() {  # install_file MODE SOURCE DEST: copy only when different
  local mode="$1" src="$2" dest="$ROOT$3"
  mkdir -p "$(dirname "$dest")"
  if [ -f "$dest" ] && cmp -s "$src" "$dest"; then
    chmod "$mode" "$dest"
    return
  fi
  install -m "$mode" "$src" "$dest"
  echo "installed $3"
  changed=1
}

if [ -z "$ROOT" ]; then
  [ "$(id -u)" -eq 0 ] || { echo "install-edge.sh: run as root (or with --root DIR)" >&2; exit 2; }
  if ! id gridgate >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/gridgate --shell /usr/sbin/nologin gridgate
    echo "created user gridgate"
  fi
  usermod -a -G dialout gridgate
  if [ ! -x /opt/gridgate/venv/bin/gridgate ]; then
    python3 -m venv /opt/gridgate/venv
    echo "created /opt/gridgate/venv"
  fi
  /opt/gridgate/venv/bin/pip install --quiet --upgrade "$SOURCE"
fi

install_file 0644 "$SOURCE/systemd/gridgate-edge.service" /etc/systemd/system/gridgate-edge.service
install_file 0644 "$SOURCE/systemd/tmpfiles.d/gridgate.conf" /etc/tmpfiles.d/gridgate.conf
install_file 0644 "$SOURCE/systemd/udev/99-gridgate-rs485.rules" /etc/udev/rules.d/99-gridgate-rs485.rules
if [ ! -f "$ROOT/etc/gridgate/edge.toml" ]; then
  install_file 0640 "$SOURCE/systemd/edge.example.toml" /etc/gridgate/edge.toml
  echo "edit /etc/gridgate/edge.toml (gateway id, buses, meters), then: gridgate edge enroll"
fi

if [ -z "$ROOT" ]; then
  chgrp gridgate /etc/gridgate /etc/gridgate/edge.toml
  systemd-tmpfiles --create /etc/tmpfiles.d/gridgate.conf
  udevadm control --reload-rules && udevadm trigger --subsystem-match=tty || true
  if [ "$changed" -eq 1 ]; then
    systemctl daemon-reload
  fi
  systemctl enable --now gridgate-edge.service
  systemctl is-active --quiet gridgate-edge.service && echo "gridgate-edge is running"
fi
[ "$changed" -eq 1 ] || echo "nothing to change"
