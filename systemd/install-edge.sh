#!/usr/bin/env bash
# Install (or update) the GridGate edge daemon on a gateway. Idempotent: running it again
# changes nothing that is already right.
#
# Layout (edge/updater.py): /opt/gridgate/base holds the dependencies; each software version
# is a venv of its own under /opt/gridgate/versions/<version> that reuses them (base.pth);
# /opt/gridgate/current points at the one the service runs, and the guard
# (/usr/local/lib/gridgate/gridgate-edge-guard, run before every start) undoes an update from
# the cloud that has not proved itself.
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
  PREFIX=/opt/gridgate
  if [ ! -x "$PREFIX/base/bin/python" ]; then
    python3 -m venv "$PREFIX/base"
    echo "created $PREFIX/base"
  fi
  "$PREFIX/base/bin/pip" install --quiet --upgrade "$SOURCE"
  "$PREFIX/base/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])" \
    > "$PREFIX/base.pth"
  VERSION="$("$PREFIX/base/bin/python" -c "import importlib.metadata as m; print(m.version('gridgate'))")"
  if [ ! -f "$PREFIX/versions/$VERSION/.installed" ]; then
    rm -rf "$PREFIX/versions/$VERSION"
    python3 -m venv --without-pip "$PREFIX/versions/$VERSION"
    SITE="$("$PREFIX/versions/$VERSION/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")"
    cp "$PREFIX/base.pth" "$SITE/gridgate-base.pth"
    "$PREFIX/versions/$VERSION/bin/python" -m pip install --quiet --no-deps "$SOURCE"
    date +%s > "$PREFIX/versions/$VERSION/.installed"
    echo "installed version $VERSION in $PREFIX/versions/$VERSION"
  fi
  if [ "$(readlink "$PREFIX/current" 2>/dev/null)" != "versions/$VERSION" ]; then
    ln -sfn "versions/$VERSION" "$PREFIX/.current.install" && mv -fT "$PREFIX/.current.install" "$PREFIX/current"
    rm -f "$PREFIX/update-pending.json"  # the technician chose this version
    echo "current version: $VERSION"
    changed=1
  fi
  chown -R gridgate:gridgate "$PREFIX"  # the daemon installs the versions the cloud sends
fi

install_file 0644 "$SOURCE/systemd/gridgate-edge.service" /etc/systemd/system/gridgate-edge.service
install_file 0755 "$SOURCE/systemd/gridgate-edge-guard" /usr/local/lib/gridgate/gridgate-edge-guard
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
    systemctl try-restart gridgate-edge.service  # a running daemon takes the new version
  fi
  systemctl enable --now gridgate-edge.service
  systemctl is-active --quiet gridgate-edge.service && echo "gridgate-edge is running"
fi
[ "$changed" -eq 1 ] || echo "nothing to change"
