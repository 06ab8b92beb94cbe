read line
echo '{"ok": true, "result": 1}'
