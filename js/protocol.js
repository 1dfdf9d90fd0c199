// The gru-edge/2 protocol in JavaScript: the package `gru-edge` (this folder, js/ in the
// repository) for Node.js apps, and the script the web page of `gru-edge web` loads (the wheel
// ships a copy of this folder's files in gru_edge/webpage/; a test fails if they drift). The
// model checks of the Python loader (onnx-reader.js, vocabulary.js), the stripping of the
// generator's input defaults, the text normalisation and the chunked generation, so every
// client writes exactly what `gru-edge sample` writes. Plain JavaScript with no Node or DOM APIs
// (TextDecoder, Uint8Array and BigInt only): in the browser it is the global `gruEdgeProtocol`,
// loaded after onnx-reader.js and vocabulary.js.
//
// The protocol itself is specified in docs/model-file.md; the package in docs/javascript.md.
(function (root, factory) {
  if (typeof module === 'object' && module.exports) {
    module.exports = factory(require('./onnx-reader.js'), require('./vocabulary.js'));
  } else {
    root.gruEdgeProtocol = factory(root.gruEdgeOnnxReader, root.gruEdgeVocabulary);
  }
})(typeof self !== 'undefined' ? self : this, function (reader, vocabulary) {
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

  // -------------------------------------------------------------- the model

  const EXPORT_FIRST = 'export its run directory to one: gru-edge export RUN_DIR --out model.onnx';
  const ZIP = [0x50, 0x4b, 0x03, 0x04]; // a .keras file is a zip archive
  const HDF5 = [0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]; // a legacy Keras .h5 file

  function startsWith(bytes, magic) {
    return bytes.length >= magic.length && magic.every((b, i) => bytes[i] === b);
  }

  // The checks that need only the bytes, in the Python loader's order and with its messages:
  // {metadata, vocab, feedable (the bytes to open)}. `name` (a path or file name) is what the
  // messages call the file.
  function inspectModel(bytes, name) {
    for (const [magic, kind] of [[ZIP, 'a zip archive'], [HDF5, 'an HDF5 file']]) {
      if (startsWith(bytes, magic)) {
        throw new ModelError(`${name} is a Keras model (${kind}), not an ONNX model; ${EXPORT_FIRST}`);
      }
    }
    let facts;
    try {
      facts = reader.inspectModel(bytes);
    } catch (e) {
      if (e instanceof reader.MetadataLimitError) throw new ModelError(`${name} ${e.message}; ${REEXPORT}`);
      if (!(e instanceof reader.ProtoError)) throw e;
      throw new ModelError(`${name} is not an ONNX model (truncated or corrupt: ${e.message}); ${REEXPORT}`);
    }
    const external = facts.externalTensors;
    if (external.length) {
      const names = external.slice(0, 3).map((n) => vocabulary.shown(n)).join(', ');
      const more = external.length > 3 ? ` and ${external.length - 3} more` : '';
      throw new ModelError(
        `${name} stores tensors as external data (${names}${more}), which gru-edge refuses for files ` +
          `from elsewhere; ${REEXPORT} (it writes one self-contained file)`,
      );
    }
    if (facts.graph === null) throw new ModelError(`${name} is not an ONNX model (it holds no graph); ${REEXPORT}`);
    const metadata = vocabulary.readMetadata(facts.metadata, name, (message) => new ModelError(message));
    if (!metadata.has('vocabulary')) throw new ModelError(`${name} has no 'vocabulary' metadata; ${REEXPORT}`);
    let vocab;
    try {
      vocab = vocabulary.parseVocabulary(metadata.get('vocabulary'));
    } catch (e) {
      if (!(e instanceof vocabulary.VocabularyError)) throw e;
      throw new ModelError(`${name}: ${e.message}; ${REEXPORT}`);
    }
    const format = metadata.get('format');
    if (format !== FORMAT) {
      const has = format === undefined ? 'no format in its metadata' : `format ${vocabulary.shown(format)}`;
      throw new ModelError(
        `${name} has ${has}, and this client needs ${FORMAT} (a model file with the in-graph generator); ${REEXPORT}`,
      );
    }
    return { metadata, vocab, feedable: reader.withFeedableInputs(bytes, facts.graph, GENERATOR_INPUTS) };
  }

  // Session options that make onnxruntime compute what gru-edge computes: one thread, all graph
  // optimisations, weight pre-packing off (so the prime's step and the generator's Scan body take
  // the same matrix kernels), and warnings off stderr (errors come back as exceptions).
  // `provider`: 'cpu' for onnxruntime-node, 'wasm' for onnxruntime-web.
  function sessionOptions(provider) {
    return {
      executionProviders: [provider],
      intraOpNumThreads: 1,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
      logSeverityLevel: 3,
      extra: { session: { disable_prepacking: '1' } },
    };
  }

  // Check the bytes, open a session with `options` (sessionOptions('cpu') for onnxruntime-node,
  // sessionOptions('wasm') for onnxruntime-web) and check it: {session, vocab, width, metadata}.
  async function openModel(ort, bytes, name, options) {
    const { metadata, vocab, feedable } = inspectModel(bytes, name);
    let session;
    try {
      session = await ort.InferenceSession.create(feedable, options);
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
      const listed = missing.slice(0, 20).map((c) => vocabulary.shown(c)).join(', ');
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
    inspectModel,
    sessionOptions,
    openModel,
    normalizeText,
    encodePrime,
    generate,
    shown: vocabulary.shown,
    printable: vocabulary.printable,
    oneLine: vocabulary.oneLine,
  };
});
