-- Masks secrets in a Fluent Bit record before it leaves the node (components/workload_logs.py).
--
-- Fluent Bit's `lua` filter calls mask_record(tag, timestamp, record) for every record, after
-- the `kubernetes` filter has merged JSON logs into it. Two passes:
--   1. every key, at any depth, whose name is in MASKED_KEYS (compared lower-cased) gets the
--      value "<masked>", whatever the value was (a string, a number, a whole map or array);
--   2. credential-shaped substrings of the top-level `log` string (a non-JSON log line) are
--      replaced: key=value pairs named by a masked key or a credential word, Authorization
--      headers, bearer tokens, passwords in URLs, AWS access key ids, Emirates ID numbers.
-- It returns 0 (keep the record as it came) when nothing was masked, 2 (record replaced,
-- timestamp kept as it was) otherwise; it never drops a record.
--
-- Written for Fluent Bit's LuaJIT (Lua 5.1 patterns, no `goto`, no integer division), and tested
-- under LuaJIT 2.1 and Lua 5.4 by tests/test_workload_logs.py. The chart renders this text
-- with Helm's `tpl`, so it must never contain two opening or two closing braces in a row.

local MASK = "<masked>"

-- Beyond this depth a subtree is masked whole rather than walked: a pathological record must
-- not exhaust the stack, and failing closed hides what could not be inspected.
local MAX_DEPTH = 64

-- Lower-cased record keys to mask; components/workload_logs.py fills the braces from
-- logMaskedFields (names matching [A-Za-z_][A-Za-z0-9_.-]*, so they need no escaping here).
local MASKED_KEYS = { --[[ logMaskedFields ]] }

-- Words that name a credential in a `key=value` or `key: value` pair of a log line, besides the
-- masked keys themselves.
local CREDENTIAL_WORDS = {
  "password", "passwd", "pwd", "secret", "token", "api_key", "apikey", "secret_access_key",
  "authorization",
}

-- A Lua pattern matching `word` in any letter case, its magic characters escaped.
local function anycase(word)
  return (word:gsub("%a", function(c)
    return "[" .. c:lower() .. c:upper() .. "]"
  end):gsub("[%-%.%+%*%?%^%$%%]", "%%%0"))
end

-- "%d" repeated n times: Lua patterns have no counted repetition.
local function digits(n)
  return string.rep("%d", n)
end

-- Each entry: a pattern and its replacement, applied in order with string.gsub.
local LINE_RULES = {}

local function add_rule(pattern, replacement)
  LINE_RULES[#LINE_RULES + 1] = { pattern, replacement }
end

-- `Authorization: <scheme> <credential>` first, so the scheme word is not taken for the secret.
local AUTH = anycase("authorization") .. "[\"']?%s*[=:]%s*"
add_rule("(" .. AUTH .. ")%a+%s+[^%s\"',;]+", "%1" .. MASK)
-- A bearer token anywhere (`-H "Bearer eyJ..."`); `<` is outside the class, so a masked token is
-- not matched again.
add_rule("(" .. anycase("bearer") .. "%s+)[%w%-%._~%+/]+=*", "%1" .. MASK)
-- A password in a URL: scheme://user:password@host.
add_rule("(://[^:/%s@]+:)[^@%s/]+@", "%1" .. MASK .. "@")
-- AWS access key ids: long-term (AKIA) and temporary (ASIA), 20 characters.
add_rule("%f[%w]A[KS]IA" .. string.rep("[A-Z0-9]", 16) .. "%f[^%w]", MASK)
-- Emirates ID numbers: 784-YYYY-NNNNNNN-C, with or without the dashes.
add_rule("%f[%d]784%-" .. digits(4) .. "%-" .. digits(7) .. "%-%d%f[%D]", MASK)
add_rule("%f[%d]784" .. digits(12) .. "%f[%D]", MASK)

-- key=value pairs: quoted values whole (they may hold spaces), then unquoted ones up to a
-- separator. The key may be quoted too (`"password": "..."` in a JSON line that was not merged).
local function add_pair_rules(word)
  local key = anycase(word) .. "[\"']?%s*[=:]%s*"
  add_rule("(" .. key .. "\")[^\"]*\"", "%1" .. MASK .. "\"")
  add_rule("(" .. key .. "')[^']*'", "%1" .. MASK .. "'")
  add_rule("(" .. key .. ")[^%s&,;\"']+", "%1" .. MASK)
end

local seen = {}
for _, word in ipairs(CREDENTIAL_WORDS) do
  seen[word] = true
  add_pair_rules(word)
end
for word in pairs(MASKED_KEYS) do
  if not seen[word] then
    add_pair_rules(word)
  end
end

local function is_masked_key(key)
  return type(key) == "string" and MASKED_KEYS[key:lower()] == true
end

-- Masks matching keys in `t` and below, in place; returns whether anything changed.
local function mask_table(t, depth)
  local changed = false
  for key, value in pairs(t) do
    if is_masked_key(key) then
      if value ~= MASK then
        t[key] = MASK
        changed = true
      end
    elseif type(value) == "table" then
      if depth >= MAX_DEPTH then
        t[key] = MASK
        changed = true
      elseif mask_table(value, depth + 1) then
        changed = true
      end
    end
  end
  return changed
end

-- `line` with every credential-shaped substring masked.
local function mask_line(line)
  for _, rule in ipairs(LINE_RULES) do
    line = line:gsub(rule[1], rule[2])
  end
  return line
end

function mask_record(tag, timestamp, record)
  local changed = mask_table(record, 1)
  local line = record["log"]
  if type(line) == "string" then
    local masked = mask_line(line)
    if masked ~= line then
      record["log"] = masked
      changed = true
    end
  end
  if changed then
    return 2, timestamp, record
  end
  return 0, timestamp, record
end
