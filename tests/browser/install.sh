#!/usr/bin/env bash
# Debian's chromium and chromedriver (the browser tests) and fonts-inter (the inbox's typeface),
# installed with apt-get only when missing. Prints how long the install took.
set -euo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
[ -f /usr/share/fonts/opentype/inter/Inter-Regular.otf ] || need+=(fonts-inter)
if [ ${#need[@]} -eq 0 ]; then
  echo "browser: chromium, chromedriver and Inter are installed"
  exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
start=$(date +%s)
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
echo "browser: installed ${need[*]} in $(( $(date +%s) - start )) s"
