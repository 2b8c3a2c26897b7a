#!/usr/bin/env bash
# Installs the Debian packages that the demo and the test suite use: a browser, a Secret Service,
# an X server with a tray host and a notification daemon, and the build deps of PyGObject.
# Does nothing for packages already present; as a non-root user it only says what is missing.
set -euo pipefail

packages=(
  chromium                      # the real browser the sign-in tests drive (through playwright)
  gnome-keyring dbus dbus-x11   # a real Secret Service for the keyring tests
  libsecret-tools               # secret-tool, to look inside the keyring from tests
  xvfb trayer dunst xdotool x11-utils imagemagick   # tray tests: X server, tray host, notifications
  desktop-file-utils            # desktop-file-validate for the autostart entry
  wrk                           # load generator for make bench
  faketime                      # libfaketime: the sleep-and-resume test jumps a running clock
  libgirepository1.0-dev libcairo2-dev pkg-config gir1.2-gtk-3.0 gir1.2-ayatanaappindicator3-0.1
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "Missing Debian packages (run as root, or: sudo apt-get install ${missing[*]})" >&2
  exit 0
fi
echo "Installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
