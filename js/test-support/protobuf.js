// Protobuf wire-format writers for the tests: just enough to build small ONNX files (and broken
// ones) byte by byte. Outside test/, so that `node --test` does not run it as a test file.
'use strict';

const utf8 = (s) => new TextEncoder().encode(s);
function varint(n) {
  const out = [];
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n) byte |= 0x80;
    out.push(byte);
  } while (n);
  return out;
}
const bytes = (...parts) => Uint8Array.from(parts.flatMap((p) => Array.from(p)));
// A length-delimited field (wire type 2), and a model's metadata_props entry (field 14).
const field = (num, payload) => bytes(varint((num << 3) | 2), varint(payload.length), payload);
const metadata = (key, value) => field(14, bytes(field(1, utf8(key)), field(2, utf8(value))));

module.exports = { utf8, varint, bytes, field, metadata };
