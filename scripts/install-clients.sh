#!/usr/bin/env bash
# Installs the MCP clients whose command-line programs can list their MCP servers without an
# account (Gemini CLI, opencode, Codex CLI, Claude Code), pinned, into a project-local folder, for the tests
# that prove `mcp-broker configure` with the real client. They run on the Node 22 that
# install-conformance.sh puts under .cache/ (Gemini CLI needs Node >= 20). Idempotent.
set -euo pipefail
dir=${1:-.cache/clients}
GEMINI_VERSION=0.61.0
OPENCODE_VERSION=1.18.33
CODEX_VERSION=0.169.0
CLAUDE_CODE_VERSION=2.1.332
installed() {  # PACKAGE VERSION
  grep -q "\"version\": \"$2\"" "$dir/node_modules/$1/package.json" 2>/dev/null
}
if installed @google/gemini-cli "$GEMINI_VERSION" && installed opencode-ai "$OPENCODE_VERSION" \
   && installed @openai/codex "$CODEX_VERSION" && installed @anthropic-ai/claude-code "$CLAUDE_CODE_VERSION" \
   && [ -x "$dir/bin/opencode" ] && [ -x "$dir/bin/claude" ]; then
  exit 0
fi
echo "Installing Gemini CLI $GEMINI_VERSION, opencode $OPENCODE_VERSION, Codex CLI $CODEX_VERSION and Claude Code $CLAUDE_CODE_VERSION into $dir"
mkdir -p "$dir"
cd "$dir"
[ -f package.json ] || echo '{"name": "mcp-clients", "private": true}' > package.json
# No install scripts: each package ships its binary (or bundle) as an ordinary dependency.
npm install --silent --no-audit --no-fund --ignore-scripts \
  "@google/gemini-cli@$GEMINI_VERSION" "opencode-ai@$OPENCODE_VERSION" "@openai/codex@$CODEX_VERSION" \
  "@anthropic-ai/claude-code@$CLAUDE_CODE_VERSION" >/dev/null
# opencode-ai's and claude-code's own install scripts only link the binary of the platform
# package that fits this machine; do the same (opencode: the baseline build without AVX2).
variant=opencode-linux-x64
grep -qw avx2 /proc/cpuinfo || variant=opencode-linux-x64-baseline
mkdir -p bin
ln -sf "../node_modules/$variant/bin/opencode" bin/opencode
ln -sf "../node_modules/@anthropic-ai/claude-code-linux-x64/claude" bin/claude
