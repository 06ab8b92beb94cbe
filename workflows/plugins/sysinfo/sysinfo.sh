#!/bin/sh
# sysinfo: an aether plugin (see docs/plugins.md) that reports facts about the local Linux host.
# Request on stdin (one line): {"function":"run","args":[...],"plugin":"sysinfo"}
# Response on stdout (one line): {"ok":true,"result":...} or {"ok":false,"error":"..."}

IFS= read -r request || [ -n "$request" ] || {
  echo '{"ok":false,"error":"no request on stdin"}'
  exit 0
}

function=$(printf '%s\n' "$request" | sed -n 's/.*"function":[[:space:]]*"\([^"\\]*\)".*/\1/p')

fail() {
  printf '{"ok":false,"error":"%s"}\n' "$1"
  exit 0
}

case "$function" in
  run | load)
    [ -r /proc/loadavg ] && [ -r /proc/uptime ] || fail "/proc is not available on this host"
    read -r load1 load5 load15 _rest < /proc/loadavg
    read -r uptime _idle < /proc/uptime
    cpus=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
    mem_total=null
    mem_available=null
    if [ -r /proc/meminfo ]; then
      while read -r key value _unit; do
        case "$key" in
          MemTotal:) mem_total=$value ;;
          MemAvailable:) mem_available=$value ;;
        esac
      done < /proc/meminfo
    fi
    printf '{"ok":true,"result":{"load1":%s,"load5":%s,"load15":%s,"cpus":%s,"uptime_s":%s,"mem_total_kb":%s,"mem_available_kb":%s}}\n' \
      "$load1" "$load5" "$load15" "$cpus" "$uptime" "$mem_total" "$mem_available"
    ;;
  echo)
    # The host writes compact JSON with the keys in the order function, args, plugin.
    args=$(printf '%s\n' "$request" | sed -n 's/.*"args":\(\[.*\]\),"plugin":.*/\1/p')
    [ -n "$args" ] || fail "cannot read args from the request"
    printf '{"ok":true,"result":%s}\n' "$args"
    ;;
  "")
    fail "the request names no function"
    ;;
  *)
    fail "unknown function: $function"
    ;;
esac
