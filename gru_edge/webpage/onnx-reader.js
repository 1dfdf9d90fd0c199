// A small reader of an ONNX file's protobuf, enough for a client: the metadata entries as stored
// (onnxruntime's JavaScript bindings expose none), the tensors kept as external data (which
// onnxruntime would read from the current folder, so a file from elsewhere that has them is
// refused), and the graph with the generator's input defaults taken out.
//
// It walks the same fields, in the same order, with the same messages and byte offsets as the
// Python loader's reader (runtime/onnx_proto.py), so both refuse a file with the same words.
// Plain JavaScript (Uint8Array and TextDecoder only): it runs in Node.js and in the browser,
// where it is the global `gruEdgeOnnxReader`. Field numbers are from onnx/onnx.proto.
(function (root, factory) {
  if (typeof module === 'object' && module.exports) module.exports = factory();
  else root.gruEdgeOnnxReader = factory();
})(typeof self !== 'undefined' ? self : this, function () {
  'use strict';

  const MAX_DEPTH = 64; // graphs nest inside node attributes (If, Loop, Scan); real models nest a few

  // ModelProto
  const M_IR_VERSION = 1;
  const M_GRAPH = 7;
  const M_OPSET = 8;
  const M_METADATA = 14;
  const M_TRAINING_INFO = 20;
  const M_FUNCTIONS = 25;
  // GraphProto
  const G_NODE = 1;
  const G_INITIALIZER = 5;
  const G_INPUT = 11;
  const G_SPARSE_INITIALIZER = 15;
  // NodeProto, FunctionProto, TrainingInfoProto, AttributeProto
  const N_ATTRIBUTE = 5;
  const F_NODE = 7;
  const F_ATTRIBUTE_PROTO = 11;
  const T_GRAPHS = [1, 2]; // initialization, algorithm
  const A_TENSORS = [5, 10];
  const A_GRAPHS = [6, 11];
  const A_SPARSE = [22, 23];
  // TensorProto, SparseTensorProto
  const TENSOR_NAME = 8;
  const TENSOR_EXTERNAL_DATA = 13;
  const TENSOR_DATA_LOCATION = 14;
  const EXTERNAL = 1;
  const SPARSE_PARTS = [1, 2]; // values, indices

  // replaces what is not UTF-8 and keeps a leading U+FEFF, as Python's errors="replace"
  const utf8 = new TextDecoder('utf-8', { ignoreBOM: true });

  class ProtoError extends Error {}

  // The metadata passed a limit while it was read (the message starts "carries ...").
  class MetadataLimitError extends ProtoError {}

  // As the Python reader's: metadata is refused by its running size and entry count as it is
  // read, so a file of millions of empty entries costs no memory before its refusal.
  const METADATA_LIMITS = { maxBytes: 1024 * 1024, maxEntries: 4096 };
  const count = (n) => n.toLocaleString('en-US');

  // [value, position after it]; the value is a Number below 2**49, else a BigInt.
  function varint(buf, pos, end) {
    let value = 0;
    let big = null;
    let shift = 0;
    for (;;) {
      if (pos >= end || shift > 63) throw new ProtoError(`truncated or overlong varint at byte ${pos}`);
      const byte = buf[pos++];
      if (shift < 49) value += (byte & 0x7f) * 2 ** shift;
      else big = (big ?? BigInt(value)) + (BigInt(byte & 0x7f) << BigInt(shift));
      if (byte < 0x80) return [big === null ? value : big, pos];
      shift += 7;
    }
  }

  // The fields of the message in buf[start, end) as [number, wire, a, b, from, to]: a varint's
  // value in a, or a length-delimited field's bytes as a..b; from..to is the whole field, tag
  // included. Fixed-width fields are skipped over. Positions are offsets in the whole file, as
  // in the Python reader's messages.
  function fields(buf, start, end) {
    const out = [];
    let pos = start;
    while (pos < end) {
      const from = pos;
      let key;
      [key, pos] = varint(buf, pos, end);
      const num = typeof key === 'bigint' ? key >> 3n : Math.floor(key / 8);
      const wire = Number(typeof key === 'bigint' ? key & 7n : key % 8);
      if (Number(num) === 0) throw new ProtoError(`field number 0 at byte ${pos}`);
      if (wire === 0) {
        let value;
        [value, pos] = varint(buf, pos, end);
        out.push([Number(num), wire, Number(value), 0, from, pos]);
      } else if (wire === 2) {
        let size;
        [size, pos] = varint(buf, pos, end);
        if (pos + Number(size) > end) {
          throw new ProtoError(`field ${num} runs past the end of its message at byte ${pos}`);
        }
        pos += Number(size);
        out.push([Number(num), wire, pos - Number(size), pos, from, pos]);
      } else if (wire === 1 || wire === 5) {
        pos += wire === 1 ? 8 : 4;
        if (pos > end) throw new ProtoError(`field ${num} runs past the end of its message`);
        out.push([Number(num), wire, 0, 0, from, pos]);
      } else {
        throw new ProtoError(`unsupported wire type ${wire} at byte ${pos}`);
      }
    }
    return out;
  }

  function text(buf, a, b) {
    return utf8.decode(buf.subarray(a, b));
  }

  // What a client needs to know of a ModelProto: {irVersion, opset, graph ([field start, body
  // start, body end] or null), externalTensors (names), metadata ([key bytes, value bytes], in file order)}.
  // Throws ProtoError where the wire format is broken, MetadataLimitError as soon as the
  // metadata passes `limits`.
  function inspectModel(bytes, limits = METADATA_LIMITS) {
    const facts = { irVersion: null, opset: null, graph: null, externalTensors: [], metadata: [] };
    let entries = 0;
    let size = 0;
    const countEntry = (a, b) => {
      entries += 1;
      for (const [n, w, c, d] of fields(bytes, a, b)) if ((n === 1 || n === 2) && w === 2) size += d - c;
      if (size > limits.maxBytes) {
        throw new MetadataLimitError(`carries ${count(size)}+ bytes of metadata, over the ${count(limits.maxBytes)}-byte limit`);
      }
      if (entries > limits.maxEntries) {
        throw new MetadataLimitError(
          `carries ${count(entries)}+ metadata entries, over the ${count(limits.maxEntries)}-entry limit`,
        );
      }
    };
    for (const [num, wire, a, b, from] of fields(bytes, 0, bytes.length)) {
      if (wire === 0 && num === M_IR_VERSION) facts.irVersion = a;
      else if (wire !== 2) continue;
      else if (num === M_GRAPH) {
        facts.graph = [from, a, b];
        graph(bytes, a, b, facts, 1);
      } else if (num === M_OPSET) {
        const [domain, version] = opset(bytes, a, b);
        if ((domain === '' || domain === 'ai.onnx') && version !== null) facts.opset = version;
      } else if (num === M_METADATA) {
        countEntry(a, b);
        facts.metadata.push(entry(bytes, a, b));
      }
      else if (num === M_TRAINING_INFO) {
        for (const [n, w, c, d] of fields(bytes, a, b)) if (T_GRAPHS.includes(n) && w === 2) graph(bytes, c, d, facts, 1);
      } else if (num === M_FUNCTIONS) functionProto(bytes, a, b, facts);
    }
    return facts;
  }

  function functionProto(buf, start, end, facts) {
    for (const [num, wire, a, b] of fields(buf, start, end)) {
      if (wire !== 2) continue;
      if (num === F_NODE) node(buf, a, b, facts, 1);
      else if (num === F_ATTRIBUTE_PROTO) attribute(buf, a, b, facts, 1); // an attribute's default
    }
  }

  function graph(buf, start, end, facts, depth) {
    if (depth > MAX_DEPTH) throw new ProtoError(`graphs nested more than ${MAX_DEPTH} deep`);
    for (const [num, wire, a, b] of fields(buf, start, end)) {
      if (wire !== 2) continue;
      if (num === G_NODE) node(buf, a, b, facts, depth);
      else if (num === G_INITIALIZER) tensor(buf, a, b, facts);
      else if (num === G_SPARSE_INITIALIZER) sparse(buf, a, b, facts);
    }
  }

  function node(buf, start, end, facts, depth) {
    for (const [num, wire, a, b] of fields(buf, start, end)) {
      if (num === N_ATTRIBUTE && wire === 2) attribute(buf, a, b, facts, depth);
    }
  }

  function attribute(buf, start, end, facts, depth) {
    for (const [num, wire, a, b] of fields(buf, start, end)) {
      if (wire !== 2) continue;
      if (A_TENSORS.includes(num)) tensor(buf, a, b, facts);
      else if (A_GRAPHS.includes(num)) graph(buf, a, b, facts, depth + 1);
      else if (A_SPARSE.includes(num)) sparse(buf, a, b, facts);
    }
  }

  function sparse(buf, start, end, facts) {
    for (const [num, wire, a, b] of fields(buf, start, end)) {
      if (SPARSE_PARTS.includes(num) && wire === 2) tensor(buf, a, b, facts);
    }
  }

  function tensor(buf, start, end, facts) {
    let name = '';
    let external = false;
    for (const [num, wire, a, b] of fields(buf, start, end)) {
      if (num === TENSOR_NAME && wire === 2) name = text(buf, a, b);
      else if ((num === TENSOR_EXTERNAL_DATA && wire === 2) || (num === TENSOR_DATA_LOCATION && wire === 0 && a === EXTERNAL)) {
        external = true;
      }
    }
    if (external) facts.externalTensors.push(name || '(unnamed)');
  }

  function opset(buf, start, end) {
    let domain = '';
    let version = null;
    for (const [num, wire, a, b] of fields(buf, start, end)) {
      if (num === 1 && wire === 2) domain = text(buf, a, b);
      else if (num === 2 && wire === 0) version = a;
    }
    return [domain, version];
  }

  // A StringStringEntryProto's key and value as bytes (the last of each wins; absent = empty).
  function entry(buf, start, end) {
    let key = new Uint8Array(0);
    let value = new Uint8Array(0);
    for (const [num, wire, a, b] of fields(buf, start, end)) {
      if (num === 1 && wire === 2) key = buf.subarray(a, b);
      else if (num === 2 && wire === 2) value = buf.subarray(a, b);
    }
    return [key, value];
  }

  function encodeVarint(value) {
    const out = [];
    let v = value;
    do {
      let byte = v % 128;
      v = Math.floor(v / 128);
      if (v) byte |= 0x80;
      out.push(byte);
    } while (v);
    return Uint8Array.from(out);
  }

  function concat(parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }

  // The model with the initializers named in `names` taken out of its graph, where the graph
  // also lists them as inputs: onnxruntime's JavaScript bindings feed only the inputs they list,
  // and they list no input that has an initializer, so a value fed for one would be dropped
  // silently and its default used instead. `graphField` is inspectModel's `graph`.
  function withFeedableInputs(bytes, graphField, names) {
    const [tagStart, start, end] = graphField;
    const graphFields = fields(bytes, start, end);
    const inputs = new Set();
    for (const [num, wire, a, b] of graphFields) {
      if (num !== G_INPUT || wire !== 2) continue;
      for (const [n, w, c, d] of fields(bytes, a, b)) if (n === 1 && w === 2) inputs.add(text(bytes, c, d));
    }
    const drop = new Set(names.filter((name) => inputs.has(name)));
    const dropped = (num, wire, a, b) => {
      if (num !== G_INITIALIZER || wire !== 2) return false;
      let name = null;
      for (const [n, w, c, d] of fields(bytes, a, b)) if (n === TENSOR_NAME && w === 2) name = text(bytes, c, d);
      return drop.has(name);
    };
    const kept = graphFields.filter((f) => !dropped(...f)).map((f) => bytes.subarray(f[4], f[5]));
    const newGraph = concat(kept);
    return concat([
      bytes.subarray(0, tagStart),
      encodeVarint((M_GRAPH << 3) | 2),
      encodeVarint(newGraph.length),
      newGraph,
      bytes.subarray(end),
    ]);
  }

  return { ProtoError, MetadataLimitError, METADATA_LIMITS, MAX_DEPTH, fields, inspectModel, withFeedableInputs };
});
