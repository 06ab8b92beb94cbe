-- Neovim (0.7+) headless: attach the built-in LSP client to `aether lsp` on the file in
-- $AETHER_FILE, wait for its diagnostics and write them to $AETHER_OUT, one per line as
-- `CODE LINE MESSAGE` (LINE 0-based); then format the buffer through the client and write
-- its lines to $AETHER_FORMATTED; then quit. Used by tests/editor_nvim.rs.
local bin = os.getenv("AETHER_BIN")
local file = os.getenv("AETHER_FILE")
local out = os.getenv("AETHER_OUT")
vim.cmd("edit " .. vim.fn.fnameescape(file))
vim.bo.filetype = "aether"
local client = vim.lsp.start_client({
  name = "aether",
  cmd = { bin, "lsp" },
  root_dir = vim.fn.fnamemodify(file, ":p:h"),
})
vim.lsp.buf_attach_client(0, client)
vim.wait(15000, function()
  return #vim.diagnostic.get(0) > 0
end, 50)
local f = io.open(out, "w")
for _, d in ipairs(vim.diagnostic.get(0)) do
  local code = d.code or (d.user_data and d.user_data.lsp and d.user_data.lsp.code) or "?"
  f:write(string.format("%s %d %s\n", code, d.lnum, (d.message:gsub("\n.*", ""))))
end
f:close()
vim.lsp.buf.formatting_sync(nil, 10000)
vim.fn.writefile(vim.api.nvim_buf_get_lines(0, 0, -1, false), os.getenv("AETHER_FORMATTED"))
vim.lsp.stop_client(client)
vim.cmd("qa!")
