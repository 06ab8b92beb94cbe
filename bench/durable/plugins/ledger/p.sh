# The crash drill's at-most-once effect: append the call's idempotency key to $DRILL_LEDGER.
# A host killed before it wrote the request leaves stdin empty: then nothing is done.
read -r line || exit 1
key=$(printf '%s' "$line" | sed -n 's/.*"idempotency_key":"\([^"]*\)".*/\1/p')
[ -n "$key" ] || exit 1
echo "$key" >> "${DRILL_LEDGER:-/dev/null}"
echo '{"ok": true, "result": 1}'
