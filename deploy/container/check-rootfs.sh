#!/usr/bin/env bash
# The image's contents, run the way the image runs them, without a container engine: the static
# binary alone in an empty root file system (chroot), as the image's non-root user (65532), with
# only the volume's directory writable, on loopback in front of a Python upstream. Checks: the
# binary needs nothing dynamically loaded; a signed callback is forwarded (200) and its replay
# refused (409); SIGTERM with a callback in flight answers it and exits 0; a new process on the
# same volume still refuses the replay; the health check is healthy while it serves and
# unhealthy once it is gone.
#
#   deploy/container/check-rootfs.sh target/x86_64-unknown-linux-musl/release/vonage-callbacks
#
# Needs root (chroot), python3 and curl. Every wait is bounded.
set -euo pipefail
binary=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
upstream_script="$here/../../cli/tests/upstream.py"

work=$(mktemp -d)
proxy_pid=""
upstream_pid=""
cleanup() {
  [ -n "$proxy_pid" ] && kill -KILL "$proxy_pid" 2>/dev/null || true
  [ -n "$upstream_pid" ] && kill -KILL "$upstream_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "check-rootfs: $*"; for f in "$work"/*.log; do echo "--- $f"; cat "$f"; done; exit 1; }

# Nothing dynamically loaded: no program interpreter, no shared library needed.
if readelf -lW "$binary" | grep -q 'program interpreter' \
  || readelf -dW "$binary" | grep -q '(NEEDED)'; then
  fail "$binary loads shared libraries: $(readelf -dW "$binary" | grep NEEDED)"
fi
echo "static: no program interpreter, no shared library needed"

# The root file system: the binary and the volume's directory, nothing else.
root="$work/root"
mkdir -p "$root/var/lib/vonage-callbacks"
cp "$binary" "$root/vonage-callbacks"
chown 65532:65532 "$root/var/lib/vonage-callbacks"
echo "root file system: $(cd "$root" && find . -mindepth 1 | sort | tr '\n' ' ')"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
admin=$(free_port)
api_key=47123456
secret=rootfs-check-project-signature-secret-01

python3 "$upstream_script" "$work/requests.jsonl" </dev/null >"$work/upstream.out" 2>"$work/upstream.log" &
upstream_pid=$!
disown "$upstream_pid"  # killed at the end: no job notice for it
for _ in $(seq 1 100); do grep -q '^listening ' "$work/upstream.out" 2>/dev/null && break; sleep 0.1; done
upstream_port=$(awk '/^listening /{print $2}' "$work/upstream.out")
[ -n "$upstream_port" ] || fail "the upstream did not start"

chroot_bin=$(command -v chroot)
# The image's environment, and nothing else of this shell's.
image_env=(VONAGE_API_KEY="$api_key" VONAGE_SIGNATURE_SECRET="$secret"
  VONAGE_PROXY_LISTEN="127.0.0.1:$port" VONAGE_PROXY_ADMIN_LISTEN="127.0.0.1:$admin"
  VONAGE_PROXY_UPSTREAM="http://127.0.0.1:$upstream_port"
  VONAGE_REPLAY_STORE=sqlite:/var/lib/vonage-callbacks/replay-window.sqlite3)
in_root() { env -i "${image_env[@]}" "$chroot_bin" --userspec=65532:65532 "$root" /vonage-callbacks "$@"; }
in_root_exec() { exec env -i "${image_env[@]}" "$chroot_bin" --userspec=65532:65532 "$root" /vonage-callbacks "$@"; }

start_proxy() {
  # exec: the job's pid is the proxy's own, so that SIGTERM reaches it.
  (exec > "$work/proxy.out" 2>>"$work/proxy.log" </dev/null; in_root_exec proxy) &
  proxy_pid=$!
  for _ in $(seq 1 100); do grep -q '^proxy: api key' "$work/proxy.out" 2>/dev/null && return; sleep 0.1; done
  fail "the proxy did not start"
}

# SIGTERM, then the exit status in $stopped (waited for in this shell: the proxy is its child).
stop_proxy() {
  kill -TERM "$proxy_pid"
  stopped=0
  wait "$proxy_pid" || stopped=$?
  proxy_pid=""
}

echo '{"event":"from-a-bare-root"}' >"$work/body.json"
token=$(VONAGE_API_KEY=$api_key VONAGE_SIGNATURE_SECRET=$secret "$binary" sign --body "$work/body.json")
post() {
  curl -sS --max-time 20 -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" \
    -H 'Content-Type: application/json' --data-binary "@$work/body.json" "http://127.0.0.1:$port$1"
}

start_proxy
first=$(post /vonage/events)
again=$(post /vonage/events)
echo "a signed callback: $first; its replay: $again"
[ "$first" = 200 ] && [ "$again" = 409 ] || fail "expected 200 then 409"

in_root healthcheck </dev/null >/dev/null 2>>"$work/health.log" || fail "unhealthy while serving"
echo "health while serving: healthy"

# A callback in flight (the upstream takes 1 s) when SIGTERM comes.
slow_token=$(echo '{"event":"in-flight"}' >"$work/slow.json" \
  && VONAGE_API_KEY=$api_key VONAGE_SIGNATURE_SECRET=$secret "$binary" sign --body "$work/slow.json")
curl -sS --max-time 20 -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $slow_token" \
  --data-binary "@$work/slow.json" "http://127.0.0.1:$port/slow/x" >"$work/inflight.code" &
curl_pid=$!
for _ in $(seq 1 100); do grep -q '/slow/x' "$work/requests.jsonl" 2>/dev/null && break; sleep 0.05; done
stop_proxy
wait "$curl_pid" || true
echo "SIGTERM with a callback in flight: it was answered $(cat "$work/inflight.code"); exit status $stopped"
[ "$(cat "$work/inflight.code")" = 200 ] && [ "$stopped" = 0 ] || fail "the drain failed"

start_proxy
replay=$(post /vonage/events)
echo "the replay, to a new process on the same volume: $replay"
[ "$replay" = 409 ] || fail "the new process forgot the window"
stop_proxy
[ "$stopped" = 0 ] || fail "the second process did not exit 0"

if in_root healthcheck </dev/null >/dev/null 2>>"$work/health.log"; then fail "healthy with no proxy"; fi
echo "health with the admin listener down: unhealthy ($(tail -n 1 "$work/health.log"))"
delivered=$(wc -l <"$work/requests.jsonl")
echo "the upstream received $delivered callbacks (the first and the one in flight)"
[ "$delivered" = 2 ] || fail "expected 2 deliveries"
echo "check-rootfs: passed"
