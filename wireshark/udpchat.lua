-- udpchat.lua: a Wireshark dissector for the udpchat wire format (docs/protocol.md, version 3).
--
-- Install: see wireshark/README.md (copy into your personal Lua plugins folder, or run
-- `wireshark -X lua_script:wireshark/udpchat.lua`). It registers on UDP port 2323 (udpchat's
-- default, and "Decode As..." offers it for any port) and as a heuristic dissector on all UDP
-- (magic "UC" and a known version), so chats on any port are recognised.
--
-- Every field of every packet kind is shown, with bincode 2's variable-length integers decoded
-- (a value below 251 is one byte; 0xfb, 0xfc, 0xfd prefix a little-endian u16, u32, u64), and the
-- CRC-32 recomputed and checked (udpchat.crc.status: "good" or "bad", with an expert warning).
-- Display filters: udpchat.kind_name == "Data", udpchat.seq == 5, udpchat.ack.cumulative,
-- udpchat.nick == "alice", udpchat.crc.status == "bad" ...
--
-- TO ADD A PACKET KIND OR A WIRE VERSION: everything protocol-specific is declared in the
-- tables in the section "THE WIRE FORMAT" below: SUPPORTED_VERSIONS (the version byte), KINDS
-- (one entry per Packet variant, by its bincode variant index: name and field list) and, for a
-- field of a new type, a reader in READERS. A new kind is one line in KINDS; a new field name
-- gets its ProtoField in FIELDS. Encrypted kinds (SEALED_KINDS) show their clear header only.

local udpchat = Proto("udpchat", "udpchat chat protocol")

local bitlib = bit32 or bit  -- Lua 5.2's bit32 (Wireshark 3.x/4.0), else Wireshark's own "bit"

------------------------------------------------------------------------------------------------
-- THE WIRE FORMAT
------------------------------------------------------------------------------------------------

local MAGIC = "UC"
local HEADER_LEN = 3   -- magic (2) + version (1)
local TRAILER_LEN = 4  -- CRC-32, little endian
local DEFAULT_PORT = 2323

-- Version byte -> what it is. Add a line per new version (and, if its kinds differ, make KINDS
-- depend on it in dissect_body).
local SUPPORTED_VERSIONS = {
  [2] = "2 (token, delivered, echo)",
  [3] = "3 (Fin, Nick)",  -- version 2's kinds, and Fin (9) and Nick (10)
}

-- The Ack structure, in field order (docs/protocol.md "Packet fields").
local ACK_FIELDS = {
  { "ack.cumulative", "u64", info = "cum" },
  { "ack.ranges", "ranges" },
  { "ack.delay_us", "u64" },
  { "ack.window", "u32" },
  { "ack.delivered", "u64", info = "delivered" },
  { "ack.echo", "u32" },
  { "ack.ranges_delivered", "bool" },
}

-- The Data structure, in field order (one fragment of one message).
local DATA_FIELDS = {
  { "dst", "conn" },
  { "seq", "u64", info = "seq" },
  { "message", "u64", info = "msg" },
  { "fragment", "u32", info = "frag" },
  { "fragments", "u32", info = "/" },  -- "/" joins it to the previous word: frag=0/1
  { "token", "u32" },
  { "payload", "bytes" },
  { "ack", "option_ack" },
}

-- THE KINDS: bincode variant index -> name and fields, in wire order.
local KINDS = {
  [0] = { name = "Raw",     fields = { { "seq", "u64", info = "seq" }, { "nick", "string", info = "nick" }, { "text", "string" } } },
  [1] = { name = "Hello",   fields = { { "src", "conn" }, { "nick", "string", info = "nick" }, { "window", "u32" } } },
  [2] = { name = "Welcome", fields = { { "src", "conn" }, { "dst", "conn" }, { "nick", "string", info = "nick" }, { "window", "u32" } } },
  [3] = { name = "Data",    fields = DATA_FIELDS },
  [4] = { name = "Ack",     fields = { { "dst", "conn" }, { "ack", "ack" } } },
  [5] = { name = "Ping",    fields = { { "dst", "conn" } } },
  [6] = { name = "Pong",    fields = { { "dst", "conn" } } },
  [7] = { name = "Close",   fields = { { "dst", "conn" }, { "ack", "option_ack" } } },
  [8] = { name = "Bundle",  fields = { { "bundle", "bundle" } } },
  -- Session control in the data stream: a Data packet under its own kind.
  [9] = { name = "Fin",     fields = DATA_FIELDS },
  [10] = { name = "Nick",   fields = DATA_FIELDS },
  -- Path MTU discovery (RFC 8899): a padded probe carrying no user data, and its answer.
  [11] = { name = "Probe",  fields = { { "dst", "conn" }, { "probe.id", "u32", info = "id" }, { "padding", "padding" } } },
  [12] = { name = "ProbeAck", fields = { { "dst", "conn" }, { "probe.id", "u32", info = "id" } } },
  -- A data-stream datagram too large for the path now, in pieces (after a black hole).
  [13] = { name = "Piece",  fields = { { "dst", "conn" }, { "piece.id", "u32", info = "id" }, { "piece.index", "u32", info = "piece" }, { "piece.count", "u32", info = "/" }, { "piece.bytes", "padding" } } },
}

local MAX_BUNDLE = 16

-- ENCRYPTED KINDS (`chat --secret`, docs/protocol.md "Security"): the fourth byte, where no plain
-- kind's varint can be. Only the clear header is shown; the rest is sealed. Handshake kinds keep
-- a CRC-32; a Sealed datagram has none (its 16-byte AEAD tag covers header and ciphertext).
local SEALED_KINDS = {
  [0x80] = { name = "Init",   len = 72 },   -- initiator id, Noise message 1 (56), CRC
  [0x81] = { name = "Reply",  len = 72 },   -- initiator id, Noise message 2 (56), CRC
  [0x82] = { name = "Reject", len = 16 },   -- initiator id, CRC
  [0x83] = { name = "Sealed" },             -- receiver id, counter, ciphertext, tag (16)
}
local SEALED_HEADER_LEN = 20
local TAG_LEN = 16
local EPOCH_BITS = 16  -- the counter's low 16 bits number datagrams within a key epoch

------------------------------------------------------------------------------------------------
-- Fields (one ProtoField per field name used above, plus the envelope's)
------------------------------------------------------------------------------------------------

local kind_names = {}
for index, kind in pairs(KINDS) do kind_names[index] = kind.name end
for index, kind in pairs(SEALED_KINDS) do kind_names[index] = kind.name end

local FIELDS = {
  ["magic"]     = ProtoField.string("udpchat.magic", "Magic"),
  ["version"]   = ProtoField.uint8("udpchat.version", "Version", base.DEC),
  ["kind"]      = ProtoField.uint32("udpchat.kind", "Kind", base.DEC, kind_names),
  ["kind_name"] = ProtoField.string("udpchat.kind_name", "Kind name"),
  ["crc"]       = ProtoField.uint32("udpchat.crc", "CRC-32", base.HEX),
  ["encrypted"] = ProtoField.bool("udpchat.encrypted", "Encrypted (--secret)"),
  ["initiator"] = ProtoField.uint64("udpchat.initiator", "Initiator session id", base.HEX),
  ["receiver"]  = ProtoField.uint64("udpchat.receiver", "Receiver session id", base.HEX),
  ["counter"]   = ProtoField.uint64("udpchat.counter", "Counter (AEAD nonce)", base.DEC),
  ["epoch"]     = ProtoField.uint64("udpchat.epoch", "Key epoch", base.DEC),
  ["noise"]     = ProtoField.bytes("udpchat.noise", "Noise handshake message"),
  ["sealed"]    = ProtoField.bytes("udpchat.sealed", "Sealed (ciphertext)"),
  ["tag"]       = ProtoField.bytes("udpchat.tag", "AEAD tag (Poly1305)"),
  ["crc.computed"] = ProtoField.uint32("udpchat.crc.computed", "CRC-32 computed", base.HEX),
  ["crc.status"] = ProtoField.string("udpchat.crc.status", "CRC-32 status"),
  ["seq"]       = ProtoField.uint64("udpchat.seq", "Sequence number", base.DEC),
  ["nick"]      = ProtoField.string("udpchat.nick", "Nickname"),
  ["text"]      = ProtoField.string("udpchat.text", "Text"),
  ["src"]       = ProtoField.uint64("udpchat.src", "Source connection id", base.HEX),
  ["dst"]       = ProtoField.uint64("udpchat.dst", "Destination connection id", base.HEX),
  ["window"]    = ProtoField.uint32("udpchat.window", "Receive window (packets)", base.DEC),
  ["message"]   = ProtoField.uint64("udpchat.message", "Message number", base.DEC),
  ["fragment"]  = ProtoField.uint32("udpchat.fragment", "Fragment index", base.DEC),
  ["fragments"] = ProtoField.uint32("udpchat.fragments", "Fragment count", base.DEC),
  ["token"]     = ProtoField.uint32("udpchat.token", "Token", base.HEX),
  ["payload"]   = ProtoField.bytes("udpchat.payload", "Payload"),
  ["payload.len"] = ProtoField.uint32("udpchat.payload.len", "Payload length", base.DEC),
  ["payload.text"] = ProtoField.string("udpchat.payload.text", "Payload as text"),
  ["ack"]       = ProtoField.none("udpchat.ack", "Ack"),
  ["ack.present"] = ProtoField.bool("udpchat.ack.present", "Ack present"),
  ["ack.cumulative"] = ProtoField.uint64("udpchat.ack.cumulative", "Cumulative (every seq below arrived)", base.DEC),
  ["ack.ranges"] = ProtoField.uint32("udpchat.ack.ranges", "Selective ranges", base.DEC),
  ["ack.range"] = ProtoField.string("udpchat.ack.range", "Range"),
  ["ack.range.first"] = ProtoField.uint64("udpchat.ack.range.first", "First", base.DEC),
  ["ack.range.last"] = ProtoField.uint64("udpchat.ack.range.last", "Last", base.DEC),
  ["ack.delay_us"] = ProtoField.uint64("udpchat.ack.delay_us", "Ack delay (us)", base.DEC),
  ["ack.window"] = ProtoField.uint32("udpchat.ack.window", "Window (packets)", base.DEC),
  ["ack.delivered"] = ProtoField.uint64("udpchat.ack.delivered", "Delivered (every seq below shown)", base.DEC),
  ["ack.echo"] = ProtoField.uint32("udpchat.ack.echo", "Echo (sum of tokens)", base.HEX),
  ["ack.ranges_delivered"] = ProtoField.bool("udpchat.ack.ranges_delivered", "Ranges count as delivered"),
  ["bundle"]    = ProtoField.uint32("udpchat.bundle.count", "Data packets in bundle", base.DEC),
  ["bundle.data"] = ProtoField.string("udpchat.bundle.data", "Data packet"),
  ["probe.id"]  = ProtoField.uint32("udpchat.probe.id", "Probe id", base.DEC),
  ["padding"]   = ProtoField.uint32("udpchat.padding", "Padding (bytes)", base.DEC),
  ["piece.id"]  = ProtoField.uint32("udpchat.piece.id", "Datagram id", base.DEC),
  ["piece.index"] = ProtoField.uint32("udpchat.piece.index", "Piece index", base.DEC),
  ["piece.count"] = ProtoField.uint32("udpchat.piece.count", "Piece count", base.DEC),
  ["piece.bytes"] = ProtoField.uint32("udpchat.piece.bytes", "Bytes of the datagram", base.DEC),
}
local field_list = {}
for _, field in pairs(FIELDS) do table.insert(field_list, field) end
udpchat.fields = field_list

local ef_crc = ProtoExpert.new("udpchat.crc.bad", "Bad CRC-32", expert.group.CHECKSUM, expert.severity.WARN)
local ef_malformed = ProtoExpert.new("udpchat.malformed", "Malformed udpchat body", expert.group.MALFORMED, expert.severity.ERROR)
local ef_version = ProtoExpert.new("udpchat.version.unsupported", "Unsupported udpchat version", expert.group.PROTOCOL, expert.severity.WARN)
udpchat.experts = { ef_crc, ef_malformed, ef_version }

------------------------------------------------------------------------------------------------
-- CRC-32 (IEEE, as zlib and crc32fast compute it)
------------------------------------------------------------------------------------------------

local function u32(x) return x % 4294967296 end  -- the "bit" library returns signed numbers

local CRC_TABLE = {}
for i = 0, 255 do
  local c = i
  for _ = 1, 8 do
    if bitlib.band(c, 1) == 1 then
      c = u32(bitlib.bxor(bitlib.rshift(c, 1), 0xEDB88320))
    else
      c = u32(bitlib.rshift(c, 1))
    end
  end
  CRC_TABLE[i] = c
end

local function crc32(bytes)  -- bytes: a ByteArray
  local crc = 0xFFFFFFFF
  for i = 0, bytes:len() - 1 do
    local index = u32(bitlib.band(bitlib.bxor(crc, bytes:get_index(i)), 0xFF))
    crc = u32(bitlib.bxor(CRC_TABLE[index], bitlib.rshift(crc, 8)))
  end
  return u32(bitlib.bxor(crc, 0xFFFFFFFF))
end

------------------------------------------------------------------------------------------------
-- bincode 2 readers: each takes (ctx, field name, tree) and returns the value read
------------------------------------------------------------------------------------------------

-- A parse error: raised with error() and caught once, at the top.
local function fail(ctx, why)
  error({ udpchat = true, why = why, offset = ctx.off }, 0)
end

local function need(ctx, n)
  if ctx.off + n > ctx.limit then fail(ctx, "truncated: " .. n .. " more bytes needed") end
end

-- A varint: returns (UInt64 value, bytes used). `max_bytes` 4 for u32 fields (0xfd refused).
local function varint(ctx, max_bytes)
  need(ctx, 1)
  local buf, off = ctx.buf, ctx.off
  local tag = buf(off, 1):uint()
  local value, len
  if tag < 251 then
    value, len = UInt64(tag), 1
  elseif tag == 251 then
    need(ctx, 3); value, len = UInt64(buf(off + 1, 2):le_uint()), 3
  elseif tag == 252 then
    need(ctx, 5); value, len = UInt64(buf(off + 1, 4):le_uint()), 5
  elseif tag == 253 and max_bytes == 8 then
    need(ctx, 9); value, len = buf(off + 1, 8):le_uint64(), 9
  else
    fail(ctx, string.format("bad varint prefix 0x%02x", tag))
  end
  ctx.off = off + len
  return value, len
end

local function add_varint(ctx, name, tree, max_bytes)
  local start = ctx.off
  local value, len = varint(ctx, max_bytes)
  if max_bytes == 4 then value = value:tonumber() end
  tree:add(FIELDS[name], ctx.buf(start, len), value)
  return value
end

local READERS = {}

READERS.u64 = function(ctx, name, tree) return add_varint(ctx, name, tree, 8) end
READERS.u32 = function(ctx, name, tree) return add_varint(ctx, name, tree, 4) end
READERS.conn = READERS.u64

READERS.bool = function(ctx, name, tree)
  need(ctx, 1)
  local b = ctx.buf(ctx.off, 1):uint()
  if b > 1 then fail(ctx, "bad bool " .. b) end
  tree:add(FIELDS[name], ctx.buf(ctx.off, 1), b == 1)
  ctx.off = ctx.off + 1
  return b == 1
end

-- Length-prefixed bytes: returns (start of the bytes, length, start of the prefix).
local function sized(ctx)
  local prefix = ctx.off
  local len = varint(ctx, 8):tonumber()
  need(ctx, len)
  local start = ctx.off
  ctx.off = ctx.off + len
  return start, len, prefix
end

READERS.string = function(ctx, name, tree)
  local start, len, prefix = sized(ctx)
  local text = len > 0 and ctx.buf(start, len):string(ENC_UTF_8) or ""
  tree:add(FIELDS[name], ctx.buf(prefix, start - prefix + len), text)
  return text
end

READERS.bytes = function(ctx, name, tree)
  local start, len, prefix = sized(ctx)
  local item = tree:add(FIELDS[name], ctx.buf(prefix, start - prefix + len))
  item:add(FIELDS[name .. ".len"], ctx.buf(prefix, start - prefix), len)
  if len > 0 then
    item:add(FIELDS[name .. ".text"], ctx.buf(start, len), ctx.buf(start, len):string(ENC_UTF_8))
  end
  return len
end

-- Padding (or a piece's bytes): a length and that many bytes; shown as the length.
READERS.padding = function(ctx, name, tree)
  local start, len, prefix = sized(ctx)
  tree:add(FIELDS[name], ctx.buf(prefix, start - prefix + len), len)
  return len .. " B padding"
end

READERS.ranges = function(ctx, name, tree)
  local start = ctx.off
  local count = varint(ctx, 8):tonumber()
  local item = tree:add(FIELDS[name], ctx.buf(start, ctx.off - start), count)
  local words = {}
  for _ = 1, count do
    -- Read both ends first, so the range item's value is "first-last".
    local rstart = ctx.off
    local first, first_len = varint(ctx, 8)
    local last, last_len = varint(ctx, 8)
    local word = tostring(first) .. "-" .. tostring(last)
    local sub = item:add(FIELDS["ack.range"], ctx.buf(rstart, first_len + last_len), word)
    sub:add(FIELDS["ack.range.first"], ctx.buf(rstart, first_len), first)
    sub:add(FIELDS["ack.range.last"], ctx.buf(rstart + first_len, last_len), last)
    table.insert(words, word)
  end
  return table.concat(words, ",")
end

-- Reads `fields` (a list of { name, type, info = label }) into `tree`; returns Info words.
local function read_fields(ctx, fields, tree)
  local info = {}
  for _, field in ipairs(fields) do
    local name, kind = field[1], field[2]
    local reader = READERS[kind]
    if reader == nil then fail(ctx, "no reader for field type " .. kind) end
    local value = reader(ctx, name, tree)
    if field.info == "/" and value ~= nil and #info > 0 then
      info[#info] = info[#info] .. "/" .. tostring(value)
    elseif field.info and value ~= nil then
      if kind == "string" then
        table.insert(info, field.info .. "=" .. string.format("%q", value))
      else
        table.insert(info, field.info .. "=" .. tostring(value))
      end
    elseif (kind == "ranges" and value ~= "") then
      table.insert(info, "sack=" .. value)
    elseif (kind == "ack" or kind == "option_ack") and value ~= nil and value ~= "" then
      table.insert(info, value)
    end
  end
  return table.concat(info, " ")
end

READERS.ack = function(ctx, name, tree)
  local start = ctx.off
  local item = tree:add(FIELDS["ack"], ctx.buf(start, 1))
  local words = read_fields(ctx, ACK_FIELDS, item)
  item:set_len(ctx.off - start)
  item:append_text(": " .. words)
  return "ack " .. words
end

READERS.option_ack = function(ctx, name, tree)
  need(ctx, 1)
  local tag = ctx.buf(ctx.off, 1):uint()
  if tag > 1 then fail(ctx, "bad Option tag " .. tag) end
  tree:add(FIELDS["ack.present"], ctx.buf(ctx.off, 1), tag == 1)
  ctx.off = ctx.off + 1
  if tag == 1 then return READERS.ack(ctx, name, tree) end
  return nil
end

READERS.bundle = function(ctx, name, tree)
  local start = ctx.off
  local count = varint(ctx, 8):tonumber()
  tree:add(FIELDS["bundle"], ctx.buf(start, ctx.off - start), count)
  if count < 1 or count > MAX_BUNDLE then
    fail(ctx, "a bundle holds 1 to " .. MAX_BUNDLE .. " data packets, not " .. count)
  end
  local words = {}
  for i = 1, count do
    local dstart = ctx.off
    local sub = tree:add(FIELDS["bundle.data"], ctx.buf(dstart, 1), "")
    local w = read_fields(ctx, DATA_FIELDS, sub)
    sub:set_len(ctx.off - dstart)
    sub:set_text((i == 1 and "Data (new): " or "Data (copy): ") .. w)
    table.insert(words, w)
  end
  return table.concat(words, " | ")
end

------------------------------------------------------------------------------------------------
-- The dissector
------------------------------------------------------------------------------------------------

local function looks_like_udpchat(buf)
  return buf:len() >= HEADER_LEN + 1 + TRAILER_LEN
    and buf(0, 2):string() == MAGIC
    and SUPPORTED_VERSIONS[buf(2, 1):uint()] ~= nil
end

-- The CRC-32 trailer of a handshake datagram (or a plain one), checked; true if good.
local function add_crc(buf, root, body_end)
  local received = buf(body_end, 4):le_uint()
  local computed = crc32(buf(0, body_end):bytes())
  local crc_item = root:add(FIELDS["crc"], buf(body_end, 4), received)
  crc_item:add(FIELDS["crc.computed"], buf(body_end, 4), computed):set_generated()
  local good = computed == received
  crc_item:add(FIELDS["crc.status"], buf(body_end, 4), good and "good" or "bad"):set_generated()
  if not good then
    crc_item:add_proto_expert_info(ef_crc,
      string.format("CRC-32 0x%08x does not match the computed 0x%08x", received, computed))
  end
  return good
end

-- An encrypted datagram: its clear header only.
local function dissect_sealed(buf, pinfo, root, kind_byte)
  local kind = SEALED_KINDS[kind_byte]
  local len = buf:len()
  root:add(FIELDS["kind"], buf(3, 1), kind_byte)
  root:add(FIELDS["kind_name"], buf(3, 1), kind.name):set_generated()
  root:add(FIELDS["encrypted"], buf(3, 1), true):set_generated()
  local info
  if kind.name == "Sealed" then
    if len < SEALED_HEADER_LEN + TAG_LEN then
      root:add_proto_expert_info(ef_malformed, "Sealed datagram shorter than a header and a tag")
      pinfo.cols.info = "udpchat, malformed: short sealed datagram"
      return len
    end
    local receiver = buf(4, 8):le_uint64()
    local counter = buf(12, 8):le_uint64()
    root:add_le(FIELDS["receiver"], buf(4, 8))
    root:add_le(FIELDS["counter"], buf(12, 8))
    root:add(FIELDS["epoch"], buf(12, 8), counter:rshift(EPOCH_BITS)):set_generated()
    root:add(FIELDS["sealed"], buf(SEALED_HEADER_LEN, len - SEALED_HEADER_LEN - TAG_LEN))
    root:add(FIELDS["tag"], buf(len - TAG_LEN, TAG_LEN))
    info = string.format("Sealed dst=%s counter=%s (%d bytes sealed)",
      receiver:tohex(), tostring(counter), len - SEALED_HEADER_LEN - TAG_LEN)
  else
    if len ~= kind.len then
      root:add_proto_expert_info(ef_malformed,
        string.format("%s of %d bytes (%d expected)", kind.name, len, kind.len))
      pinfo.cols.info = "udpchat, malformed: " .. kind.name .. " of the wrong length"
      return len
    end
    root:add_le(FIELDS["initiator"], buf(4, 8))
    if len > 16 then root:add(FIELDS["noise"], buf(12, len - 16)) end
    local good = add_crc(buf, root, len - TRAILER_LEN)
    info = string.format("%s initiator=%s", kind.name, buf(4, 8):le_uint64():tohex())
    if not good then info = info .. " [BAD CRC]" end
  end
  pinfo.cols.info = info
  root:append_text(", " .. info)
  return len
end

function udpchat.dissector(buf, pinfo, tree)
  local len = buf:len()
  if len < HEADER_LEN + 1 + TRAILER_LEN or buf(0, 2):string() ~= MAGIC then
    return 0
  end
  pinfo.cols.protocol = "udpchat"
  local root = tree:add(udpchat, buf(), "udpchat")
  root:add(FIELDS["magic"], buf(0, 2))
  local version = buf(2, 1):uint()
  local vitem = root:add(FIELDS["version"], buf(2, 1))
  local kind_byte = buf(3, 1):uint()
  if version == 3 and SEALED_KINDS[kind_byte] ~= nil then
    vitem:append_text(" [" .. SUPPORTED_VERSIONS[version] .. "]")
    return dissect_sealed(buf, pinfo, root, kind_byte)
  end

  local body_end = len - TRAILER_LEN
  local good = add_crc(buf, root, body_end)

  if SUPPORTED_VERSIONS[version] == nil then
    vitem:add_proto_expert_info(ef_version, "udpchat version " .. version .. " is not one this dissector knows")
    pinfo.cols.info = "udpchat version " .. version .. " (unsupported)"
    return len
  end
  vitem:append_text(" [" .. SUPPORTED_VERSIONS[version] .. "]")

  local ctx = { buf = buf, off = HEADER_LEN, limit = body_end }
  local ok, err = pcall(function()
    local kstart = ctx.off
    local index = varint(ctx, 4):tonumber()
    local kind = KINDS[index]
    root:add(FIELDS["kind"], buf(kstart, ctx.off - kstart), index)
    if kind == nil then fail(ctx, "unknown packet kind " .. index) end
    root:add(FIELDS["kind_name"], buf(kstart, ctx.off - kstart), kind.name):set_generated()
    local words = read_fields(ctx, kind.fields, root)
    if ctx.off ~= body_end then
      fail(ctx, (body_end - ctx.off) .. " trailing bytes after the body")
    end
    -- A standalone Ack's words start with "ack" already.
    words = (kind.name == "Ack") and words:gsub("^ack ", "") or words
    local info = kind.name .. (words ~= "" and (" " .. words) or "")
    if not good then info = info .. " [BAD CRC]" end
    pinfo.cols.info = info
    root:append_text(", " .. info)
  end)
  if not ok then
    local why = type(err) == "table" and err.why or tostring(err)
    root:add_proto_expert_info(ef_malformed, "Malformed body: " .. why)
    pinfo.cols.info = "udpchat, malformed: " .. why .. (good and "" or " [BAD CRC]")
  end
  return len
end

local function heuristic(buf, pinfo, tree)
  if not looks_like_udpchat(buf) then return false end
  udpchat.dissector(buf, pinfo, tree)
  return true
end

DissectorTable.get("udp.port"):add(DEFAULT_PORT, udpchat)
udpchat:register_heuristic("udp", heuristic)
