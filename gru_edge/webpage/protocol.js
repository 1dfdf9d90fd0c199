// The gru-edge/2 protocol in JavaScript, shared by the web page (gru_edge/webpage/app.js, which
// loads this file as a classic <script>) and the Node client (examples/node/generate.js, which
// require()s it): one copy of the protobuf reader, the stripping of the generator's input
// defaults, the text normalisation and the chunked generation, so both write exactly what
// `gru-edge sample` writes. Plain JavaScript with no Node or DOM APIs (TextDecoder, Uint8Array
// and BigInt only), so it runs unchanged in both.
//
// The protocol itself is documented in examples/node/README.md and the main README ("The model
// file").
(function (root, factory) {
  if (typeof module === 'object' && module.exports) module.exports = factory();
  else root.gruEdgeProtocol = factory();
})(typeof self !== 'undefined' ? self : this, function () {
  'use strict';

  const FORMAT = 'gru-edge/2';
  const REEXPORT = 're-export it with gru-edge export';
  const PRIME_CHUNK = 2048; // prime ids per call, as gru-edge feeds them
  const FIRST_CHUNK = 32; // characters of the first generating call (the first text comes soon)
  const MAX_CHUNK = 2048; // characters per call at most
  const CHUNK_VALUES = 1 << 19; // steps x vocabulary per call at most, as gru-edge (runtime/ingraph.py)
  const MAX_SEED = (1n << 63n) - 1n;
  const MAX_TEMPERATURE = 1e30;
  // The generator's inputs: each has a default (an initializer of the same name) in the file.
  const GENERATOR_INPUTS = ['steps', 'temperature', 'top_k', 'top_p', 'seed', 'offset'];
  const GENERATOR_OUTPUTS = ['generated', 'gen_state', 'logit_sums'];

  class UsageError extends Error {
    constructor(message) {
      super(message);
      this.exitCode = 2;
    }
  }

  class ModelError extends Error {
    constructor(message, exitCode = 1) {
      super(message);
      this.exitCode = exitCode;
    }
  }

  // -------------------------------------------------------------- settings

  function wholeNumber(text) {
    return /^\+?[0-9]+$/.test(text.trim()) ? BigInt(text.trim()) : null;
  }

  function decimal(text) {
    const t = text.trim();
    return /^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$/.test(t) ? Number(t) : NaN;
  }

  const CLI_NAMES = { length: '--length', temperature: '--temperature', topK: '--top-k', topP: '--top-p', seed: '--seed' };

  // Settings from strings (command-line arguments or URL parameters), checked as gru-edge sample
  // checks them; `names` says what to call each one in a message.
  function checkOptions(raw, names = CLI_NAMES) {
    let length = 400;
    if (raw.length !== undefined) {
      const n = wholeNumber(raw.length);
      if (n === null || n > BigInt(Number.MAX_SAFE_INTEGER)) {
        throw new UsageError(`${names.length} must be a whole number >= 0, got ${JSON.stringify(raw.length)}`);
      }
      length = Number(n);
    }
    let temperature = 1.0;
    if (raw.temperature !== undefined) {
      temperature = decimal(raw.temperature);
      if (!(Number.isFinite(temperature) && temperature >= 0 && temperature <= MAX_TEMPERATURE)) {
        throw new UsageError(
          `${names.temperature} must be a finite number >= 0 (at most ${MAX_TEMPERATURE}), got ${JSON.stringify(raw.temperature)}`,
        );
      }
    }
    let topK = null;
    if (raw.topK !== undefined) {
      const k = wholeNumber(raw.topK);
      if (k === null || k < 1n || k > MAX_SEED) {
        throw new UsageError(`${names.topK} must be a whole number >= 1, got ${JSON.stringify(raw.topK)}; omit it to keep all`);
      }
      topK = k;
    }
    let topP = null;
    if (raw.topP !== undefined) {
      topP = decimal(raw.topP);
      if (!(topP > 0 && topP <= 1)) {
        throw new UsageError(`${names.topP} must be in (0, 1], got ${JSON.stringify(raw.topP)}; try 0.9`);
      }
    }
    let seed = null;
    if (raw.seed !== undefined) {
      seed = wholeNumber(raw.seed);
      if (seed === null || seed > MAX_SEED) {
        throw new UsageError(`${names.seed} must be a whole number >= 0 and below 2**63, got ${JSON.stringify(raw.seed)}`);
      }
    }
    return { prime: raw.prime, length, temperature, topK, topP, seed };
  }

  // -------------------------------------------------------------- a minimal protobuf reader

  // Field numbers of onnx.proto that this file needs.
  const MODEL_GRAPH = 7; // ModelProto.graph
  const MODEL_METADATA = 14; // ModelProto.metadata_props (StringStringEntryProto: 1 key, 2 value)
  const GRAPH_INITIALIZER = 5; // GraphProto.initializer (TensorProto: 8 name)
  const GRAPH_INPUT = 11; // GraphProto.input (ValueInfoProto: 1 name)

  const utf8 = new TextDecoder('utf-8');

  function readVarint(buf, pos) {
    let value = 0n;
    let shift = 0n;
    for (;;) {
      if (pos >= buf.length) throw new Error('truncated varint');
      const byte = buf[pos++];
      value |= BigInt(byte & 0x7f) << shift;
      if (!(byte & 0x80)) return [value, pos];
      shift += 7n;
      if (shift > 63n) throw new Error('varint too long');
    }
  }

  // The fields of one message: [{number, wire, start, end, body}] where start..end is the whole
  // field (tag included) and body the payload of a length-delimited field.
  function fields(buf) {
    const out = [];
    let pos = 0;
    while (pos < buf.length) {
      const start = pos;
      let tag;
      [tag, pos] = readVarint(buf, pos);
      const number = Number(tag >> 3n);
      const wire = Number(tag & 7n);
      let body = null;
      if (wire === 0) {
        [, pos] = readVarint(buf, pos);
      } else if (wire === 1) {
        pos += 8;
      } else if (wire === 5) {
        pos += 4;
      } else if (wire === 2) {
        let size;
        [size, pos] = readVarint(buf, pos);
        if (size > BigInt(buf.length - pos)) throw new Error('truncated field');
        body = buf.subarray(pos, pos + Number(size));
        pos += Number(size);
      } else {
        throw new Error(`unsupported wire type ${wire}`);
      }
      if (pos > buf.length) throw new Error('truncated field');
      out.push({ number, wire, start, end: pos, body });
    }
    return out;
  }

  function stringField(buf, number) {
    let value = null;
    for (const f of fields(buf)) {
      if (f.number === number && f.wire === 2) value = utf8.decode(f.body);
    }
    return value;
  }

  function encodeVarint(value) {
    const bytes = [];
    let v = BigInt(value);
    do {
      let byte = Number(v & 0x7fn);
      v >>= 7n;
      if (v) byte |= 0x80;
      bytes.push(byte);
    } while (v);
    return Uint8Array.from(bytes);
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

  // ModelProto's metadata_props as a Map, and its graph field.
  function readModel(bytes) {
    const metadata = new Map();
    let graph = null;
    for (const f of fields(bytes)) {
      if (f.number === MODEL_METADATA && f.wire === 2) {
        const key = stringField(f.body, 1);
        if (key !== null) metadata.set(key, stringField(f.body, 2) ?? '');
      } else if (f.number === MODEL_GRAPH && f.wire === 2) {
        graph = f;
      }
    }
    return { metadata, graph };
  }

  // The model with the generator's defaults taken out of the graph's initializers, so that its
  // optional inputs become plain inputs: onnxruntime's JavaScript bindings feed only the inputs
  // they list, and they list neither these nor any other input that has an initializer, so a
  // value fed for one would be dropped silently and the default (steps 0: no text) used instead.
  function withFeedableInputs(bytes, graphField) {
    const graph = graphField.body;
    const inputs = new Set();
    for (const f of fields(graph)) {
      if (f.number === GRAPH_INPUT && f.wire === 2) inputs.add(stringField(f.body, 1));
    }
    const drop = new Set(GENERATOR_INPUTS.filter((name) => inputs.has(name)));
    const kept = [];
    for (const f of fields(graph)) {
      if (f.number === GRAPH_INITIALIZER && f.wire === 2 && drop.has(stringField(f.body, 8))) continue;
      kept.push(graph.subarray(f.start, f.end));
    }
    const newGraph = concat(kept);
    return concat([
      bytes.subarray(0, graphField.start),
      encodeVarint((MODEL_GRAPH << 3) | 2),
      encodeVarint(newGraph.length),
      newGraph,
      bytes.subarray(graphField.end),
    ]);
  }

  // -------------------------------------------------------------- the model

  function shown(char) {
    return JSON.stringify(char);
  }

  function parseVocabulary(raw, name) {
    const bad = (why) => new ModelError(`${name} has a broken 'vocabulary' in its metadata: ${why}; ${REEXPORT}`);
    let vocab;
    try {
      vocab = JSON.parse(raw);
    } catch (e) {
      throw bad('it is not JSON');
    }
    if (!Array.isArray(vocab) || vocab.length === 0) throw bad('it is not a non-empty JSON array');
    const ids = new Map();
    vocab.forEach((char, i) => {
      if (typeof char !== 'string' || Array.from(char).length !== 1) {
        throw bad(`entry ${i} is ${JSON.stringify(char)}, not one character`);
      }
      if (ids.has(char)) throw bad(`it repeats ${shown(char)}`);
      ids.set(char, i);
    });
    return { chars: vocab, ids };
  }

  // The checks that need only the bytes: {metadata, vocab, feedable (the bytes to open)}.
  // `name` (a path or file name) is what the messages call the file.
  function inspectModel(bytes, name) {
    let model;
    try {
      model = readModel(bytes);
    } catch (e) {
      throw new ModelError(`${name} is not an ONNX model file (${e.message}); ${REEXPORT}`);
    }
    const { metadata, graph } = model;
    const format = metadata.get('format');
    if (format !== FORMAT) {
      const has = format === undefined ? 'no format in its metadata' : `format ${JSON.stringify(format)}`;
      throw new ModelError(
        `${name} has ${has}, and this client needs ${FORMAT} (a model file with the in-graph generator); ${REEXPORT}`,
      );
    }
    if (!metadata.has('vocabulary')) throw new ModelError(`${name} has no 'vocabulary' in its metadata; ${REEXPORT}`);
    if (graph === null) throw new ModelError(`${name} has no graph; ${REEXPORT}`);
    const vocab = parseVocabulary(metadata.get('vocabulary'), name);
    return { metadata, vocab, feedable: withFeedableInputs(bytes, graph) };
  }

  // Check the bytes, open a session with `sessionOptions` (the binding's: Node and web differ)
  // and check it: {session, vocab, width, metadata}.
  async function openModel(ort, bytes, name, sessionOptions) {
    const { metadata, vocab, feedable } = inspectModel(bytes, name);
    let session;
    try {
      session = await ort.InferenceSession.create(feedable, sessionOptions);
    } catch (e) {
      const why = String(e && e.message ? e.message : e).split('\n')[0];
      throw new ModelError(`onnxruntime cannot load ${name}: ${why}; ${REEXPORT}`);
    }
    const missing = [
      ...GENERATOR_OUTPUTS.filter((n) => !session.outputNames.includes(n)),
      ...GENERATOR_INPUTS.filter((n) => !session.inputNames.includes(n)),
    ];
    if (missing.length) {
      throw new ModelError(`${name} says ${FORMAT} but its graph lacks ${missing.join(', ')}; ${REEXPORT}`);
    }
    return { session, vocab, width: stateWidth(session, metadata, name), metadata };
  }

  function stateWidth(session, metadata, name) {
    const info = (session.inputMetadata || []).find((m) => m && m.name === 'state');
    const dim = info && Array.isArray(info.shape) ? info.shape[1] : undefined;
    if (typeof dim === 'number' && dim > 0) return dim;
    const units = Number(metadata.get('units'));
    const layers = metadata.has('layers') ? Number(metadata.get('layers')) : 1;
    if (!(Number.isInteger(units) && units > 0 && Number.isInteger(layers) && layers > 0)) {
      throw new ModelError(`${name} gives no width for 'state' (no fixed shape, no units metadata); ${REEXPORT}`);
    }
    return units * layers;
  }

  // -------------------------------------------------------------- text

  // gru-edge's text policy: leading BOM dropped, CRLF and lone CR turned into LF, Unicode NFC.
  function normalizeText(text) {
    if (text.startsWith('\ufeff')) text = text.slice(1);
    return text.replace(/\r\n/g, '\n').replace(/\r/g, '\n').normalize('NFC');
  }

  function byCodePoint(a, b) {
    return a.codePointAt(0) - b.codePointAt(0);
  }

  // [ids of the prime, the prime as printed]. No prime (or nothing after normalising) starts
  // from "\n" (the vocabulary's first character if it lacks one), which is not printed.
  function encodePrime(prime, vocab) {
    const text = prime ? normalizeText(prime) : '';
    const chars = Array.from(text); // code points, not UTF-16 units
    const missing = [...new Set(chars.filter((c) => !vocab.ids.has(c)))].sort(byCodePoint);
    if (missing.length) {
      const listed = missing.slice(0, 20).map(shown).join(', ');
      const more = missing.length > 20 ? ` and ${missing.length - 20} more` : '';
      throw new UsageError(
        `the prime has ${missing.length} character(s) the model's vocabulary lacks: ${listed}${more}; remove them`,
      );
    }
    if (!chars.length) {
      const start = vocab.ids.has('\n') ? '\n' : vocab.chars[0];
      return [[vocab.ids.get(start)], ''];
    }
    return [chars.map((c) => vocab.ids.get(c)), text];
  }

  // -------------------------------------------------------------- generation

  // Yields arrays of new ids, `length` in all, after `primeIds`: exactly gru-edge's calls.
  // settings: {temperature (number), topK (BigInt or null), topP (number or null), seed (BigInt)}.
  async function* generate(ort, model, primeIds, length, settings) {
    if (length === 0) return;
    const { session, width } = model;
    const int64 = (values, dims) => new ort.Tensor('int64', BigInt64Array.from(values, BigInt), dims);
    const scalarI64 = (value) => int64([value], []);
    const scalarF32 = (value) => new ort.Tensor('float32', Float32Array.from([value]), []);
    const fixed = {
      temperature: scalarF32(settings.temperature),
      top_k: scalarI64(settings.topK ?? 0n),
      top_p: scalarF32(settings.topP ?? 1.0),
      seed: scalarI64(settings.seed),
    };
    const call = async (ids, state, steps, offset) => {
      const out = await session.run(
        { ids, state, steps: scalarI64(steps), offset: scalarI64(offset), ...fixed },
        GENERATOR_OUTPUTS,
      );
      return [out.generated, out.gen_state, out.logit_sums];
    };

    let state = new ort.Tensor('float32', new Float32Array(width), [1, width]);
    // A long prime goes in pieces of PRIME_CHUNK ids: each but the last with steps 1, whose
    // gen_state is the state after it; the last starts the generation.
    let start = 0;
    for (; primeIds.length - start > PRIME_CHUNK; start += PRIME_CHUNK) {
      const piece = primeIds.slice(start, start + PRIME_CHUNK);
      [, state] = await call(int64(piece, [1, piece.length]), state, 1, 0);
    }
    const last = primeIds.slice(start);
    let ids = int64(last, [1, last.length]);

    const most = Math.max(1, Math.min(MAX_CHUNK, Math.floor(CHUNK_VALUES / model.vocab.chars.length)));
    let offset = 0;
    let chunk = Math.min(FIRST_CHUNK, most);
    while (offset < length) {
      const steps = Math.min(chunk, length - offset);
      const [generated, newState, sums] = await call(ids, state, steps, offset);
      const bad = sums.data.findIndex((x) => !Number.isFinite(x));
      if (bad >= 0) {
        throw new ModelError(
          `the model's logits are not finite at generated character ${offset + bad + 1} ` +
            `(logit sum ${sums.data[bad]}): the model file is broken; ${REEXPORT} from a good run`,
        );
      }
      const got = generated.data;
      if (generated.dims.length !== 2 || generated.dims[1] !== steps || got.length !== steps) {
        throw new ModelError(`the model returned ${got.length} characters for ${steps} asked; ${REEXPORT}`);
      }
      const picked = Array.from(got, Number);
      if (picked.some((i) => !(i >= 0 && i < model.vocab.chars.length))) {
        throw new ModelError(`the model picked an id outside its vocabulary; ${REEXPORT}`);
      }
      yield picked;
      ids = int64([got[got.length - 1]], [1, 1]);
      state = newState;
      offset += steps;
      chunk = Math.min(chunk * 2, most);
    }
  }

  return {
    FORMAT,
    REEXPORT,
    MAX_SEED,
    GENERATOR_INPUTS,
    GENERATOR_OUTPUTS,
    UsageError,
    ModelError,
    checkOptions,
    readModel,
    withFeedableInputs,
    inspectModel,
    openModel,
    normalizeText,
    encodePrime,
    generate,
  };
});
