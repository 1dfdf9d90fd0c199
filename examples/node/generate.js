#!/usr/bin/env node
// Generate text from a gru-edge/2 ONNX file with onnxruntime-node.
//
// The model file generates the text itself (its in-graph generator picks every character with
// a counter-based random stream), so this client only feeds it and prints what it returns:
// for the same file and arguments it prints exactly what `gru-edge sample` prints.
//
//   node generate.js MODEL.onnx [--prime TEXT] [--length N] [--seed S] [--temperature T]
//                               [--top-k K] [--top-p P]
//
// See README.md next to this file for the protocol.
'use strict';

const crypto = require('crypto');
const fs = require('fs');

const FORMAT = 'gru-edge/2';
const REEXPORT = 're-export it with gru-edge export';
const PRIME_CHUNK = 2048; // prime ids per call, as gru-edge feeds them
const FIRST_CHUNK = 32; // characters of the first generating call (the first text comes soon)
const MAX_CHUNK = 2048; // characters per call at most
const CHUNK_VALUES = 1 << 17; // steps x vocabulary per call at most (the graph holds that much)
const MAX_SEED = (1n << 63n) - 1n;
const MAX_TEMPERATURE = 1e30;
// The generator's inputs: each has a default (an initializer of the same name) in the file.
const GENERATOR_INPUTS = ['steps', 'temperature', 'top_k', 'top_p', 'seed', 'offset'];
const GENERATOR_OUTPUTS = ['generated', 'gen_state', 'logit_sums'];

const USAGE = `usage: node generate.js MODEL.onnx [options]

Generate text from MODEL (a gru-edge/2 .onnx file written by gru-edge export) with
onnxruntime-node. Prints the prime, then the generated text, then a newline: exactly what
\`gru-edge sample\` prints for the same arguments.

options:
  --prime TEXT          text to continue; printed before the generated text
                        (without it the text starts after a newline, which is not printed)
  -l, --length N        characters to generate; 0 prints the prime only (default 400)
  -t, --temperature T   randomness: 0 = always the likeliest character (default 1.0)
  --top-k K             keep only the K likeliest characters (K >= 1)
  --top-p P             keep the likeliest characters whose odds add up to P, in (0, 1]
  --seed S              0 to 2**63 - 1; the same seed gives the same text (default: drawn)
  -v, --verbose         report the seed and the model on stderr
  -h, --help            show this text
`;

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

// ---------------------------------------------------------------- arguments

const OPTIONS = {
  '--prime': 'prime',
  '--length': 'length',
  '-l': 'length',
  '--temperature': 'temperature',
  '--diversity': 'temperature',
  '-t': 'temperature',
  '--top-k': 'topK',
  '--top-p': 'topP',
  '--seed': 'seed',
};

function parseArgs(argv) {
  const raw = {};
  const positional = [];
  let verbose = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '-h' || arg === '--help') return { help: true };
    if (arg === '-v' || arg === '--verbose') {
      verbose = true;
      continue;
    }
    if (arg === '--') {
      positional.push(...argv.slice(i + 1));
      break;
    }
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    if (Object.prototype.hasOwnProperty.call(OPTIONS, name)) {
      let value;
      if (eq > 0) value = arg.slice(eq + 1);
      else if (i + 1 < argv.length) value = argv[++i];
      else throw new UsageError(`${name} needs a value`);
      raw[OPTIONS[name]] = value;
    } else if (arg.startsWith('-') && arg !== '-') {
      throw new UsageError(`unknown option ${arg}; see --help`);
    } else {
      positional.push(arg);
    }
  }
  if (positional.length !== 1) {
    throw new UsageError(
      positional.length ? `expected one MODEL.onnx, got ${positional.length} arguments` : 'missing MODEL.onnx; see --help',
    );
  }
  return { model: positional[0], verbose, ...checkOptions(raw) };
}

function wholeNumber(text) {
  return /^\+?[0-9]+$/.test(text.trim()) ? BigInt(text.trim()) : null;
}

function decimal(text) {
  const t = text.trim();
  return /^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$/.test(t) ? Number(t) : NaN;
}

function checkOptions(raw) {
  let length = 400;
  if (raw.length !== undefined) {
    const n = wholeNumber(raw.length);
    if (n === null || n > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new UsageError(`--length must be a whole number >= 0, got ${JSON.stringify(raw.length)}`);
    }
    length = Number(n);
  }
  let temperature = 1.0;
  if (raw.temperature !== undefined) {
    temperature = decimal(raw.temperature);
    if (!(Number.isFinite(temperature) && temperature >= 0 && temperature <= MAX_TEMPERATURE)) {
      throw new UsageError(
        `--temperature must be a finite number >= 0 (at most ${MAX_TEMPERATURE}), got ${JSON.stringify(raw.temperature)}`,
      );
    }
  }
  let topK = null;
  if (raw.topK !== undefined) {
    const k = wholeNumber(raw.topK);
    if (k === null || k < 1n || k > MAX_SEED) {
      throw new UsageError(`--top-k must be a whole number >= 1, got ${JSON.stringify(raw.topK)}; omit it to keep all`);
    }
    topK = k;
  }
  let topP = null;
  if (raw.topP !== undefined) {
    topP = decimal(raw.topP);
    if (!(topP > 0 && topP <= 1)) {
      throw new UsageError(`--top-p must be in (0, 1], got ${JSON.stringify(raw.topP)}; try 0.9`);
    }
  }
  let seed = null;
  if (raw.seed !== undefined) {
    seed = wholeNumber(raw.seed);
    if (seed === null || seed > MAX_SEED) {
      throw new UsageError(`--seed must be a whole number >= 0 and below 2**63, got ${JSON.stringify(raw.seed)}`);
    }
  }
  return { prime: raw.prime, length, temperature, topK, topP, seed };
}

// ---------------------------------------------------------------- a minimal protobuf reader

// Field numbers of onnx.proto that this file needs.
const MODEL_GRAPH = 7; // ModelProto.graph
const MODEL_METADATA = 14; // ModelProto.metadata_props (StringStringEntryProto: 1 key, 2 value)
const GRAPH_INITIALIZER = 5; // GraphProto.initializer (TensorProto: 8 name)
const GRAPH_INPUT = 11; // GraphProto.input (ValueInfoProto: 1 name)

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
    if (f.number === number && f.wire === 2) value = Buffer.from(f.body).toString('utf8');
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
  return Buffer.from(bytes);
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
// optional inputs become plain inputs: onnxruntime-node feeds only the inputs it lists, and it
// lists neither these nor any other input that has an initializer, so a value fed for one
// would be dropped silently and the default (steps 0: no text) used instead.
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
  const newGraph = Buffer.concat(kept);
  const tag = encodeVarint((MODEL_GRAPH << 3) | 2);
  return Buffer.concat([
    bytes.subarray(0, graphField.start),
    tag,
    encodeVarint(newGraph.length),
    newGraph,
    bytes.subarray(graphField.end),
  ]);
}

// ---------------------------------------------------------------- the model

function shown(char) {
  return JSON.stringify(char);
}

function parseVocabulary(raw, path) {
  const bad = (why) => new ModelError(`${path} has a broken 'vocabulary' in its metadata: ${why}; ${REEXPORT}`);
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

async function loadModel(ort, path) {
  let bytes;
  try {
    bytes = fs.readFileSync(path);
  } catch (e) {
    throw new ModelError(`cannot read model file ${path}: ${e.code === 'ENOENT' ? 'not found' : e.message}`, 2);
  }
  let model;
  try {
    model = readModel(bytes);
  } catch (e) {
    throw new ModelError(`${path} is not an ONNX model file (${e.message}); ${REEXPORT}`);
  }
  const { metadata, graph } = model;
  const format = metadata.get('format');
  if (format !== FORMAT) {
    const has = format === undefined ? 'no format in its metadata' : `format ${JSON.stringify(format)}`;
    throw new ModelError(
      `${path} has ${has}, and this client needs ${FORMAT} (a model file with the in-graph generator); ${REEXPORT}`,
    );
  }
  if (!metadata.has('vocabulary')) throw new ModelError(`${path} has no 'vocabulary' in its metadata; ${REEXPORT}`);
  if (graph === null) throw new ModelError(`${path} has no graph; ${REEXPORT}`);
  const vocab = parseVocabulary(metadata.get('vocabulary'), path);

  let session;
  try {
    session = await ort.InferenceSession.create(withFeedableInputs(bytes, graph), {
      executionProviders: ['cpu'],
      intraOpNumThreads: 1,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
      logSeverityLevel: 3, // errors come back as exceptions; onnxruntime's warnings stay off stderr
      // as gru-edge does: the same matrix kernels for the prime as for the generator's Loop
      extra: { session: { disable_prepacking: '1' } },
    });
  } catch (e) {
    throw new ModelError(`onnxruntime cannot load ${path}: ${String(e.message).split('\n')[0]}; ${REEXPORT}`);
  }
  const missing = [...GENERATOR_OUTPUTS.filter((n) => !session.outputNames.includes(n)),
    ...GENERATOR_INPUTS.filter((n) => !session.inputNames.includes(n))];
  if (missing.length) {
    throw new ModelError(`${path} says ${FORMAT} but its graph lacks ${missing.join(', ')}; ${REEXPORT}`);
  }
  return { session, vocab, width: stateWidth(session, metadata, path) };
}

function stateWidth(session, metadata, path) {
  const info = (session.inputMetadata || []).find((m) => m && m.name === 'state');
  const dim = info && Array.isArray(info.shape) ? info.shape[1] : undefined;
  if (typeof dim === 'number' && dim > 0) return dim;
  const units = Number(metadata.get('units'));
  const layers = metadata.has('layers') ? Number(metadata.get('layers')) : 1;
  if (!(Number.isInteger(units) && units > 0 && Number.isInteger(layers) && layers > 0)) {
    throw new ModelError(`${path} gives no width for 'state' (no fixed shape, no units metadata); ${REEXPORT}`);
  }
  return units * layers;
}

// ---------------------------------------------------------------- text

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

// ---------------------------------------------------------------- generation

// Yields arrays of new ids, `length` in all, after `primeIds`: exactly gru-edge's calls.
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

// ---------------------------------------------------------------- main

async function main(argv) {
  let args;
  try {
    args = parseArgs(argv);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`Error: ${e.message}\n`);
      return e.exitCode;
    }
    throw e;
  }
  if (args.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  let ort;
  try {
    ort = require('onnxruntime-node');
  } catch (e) {
    process.stderr.write(
      'Error: onnxruntime-node is not installed; run `npm install --onnxruntime-node-install=skip` in examples/node\n',
    );
    return 1;
  }
  process.stdout.on('error', (e) => {
    if (e.code === 'EPIPE') process.exit(0); // the reader went away (| head): stop quietly
    throw e;
  });
  try {
    const model = await loadModel(ort, args.model);
    const [primeIds, printed] = encodePrime(args.prime, model.vocab);
    const seed = args.seed ?? BigInt(crypto.randomBytes(4).readUInt32LE(0));
    if (args.verbose) {
      process.stderr.write(
        `model ${args.model}: state ${model.width} wide, ${model.vocab.chars.length} characters, on the CPU; seed ${seed}\n`,
      );
    }
    process.stdout.write(printed);
    const { chars } = model.vocab;
    const settings = { temperature: args.temperature, topK: args.topK, topP: args.topP, seed };
    for await (const ids of generate(ort, model, primeIds, args.length, settings)) {
      process.stdout.write(ids.map((i) => chars[i]).join(''));
    }
    process.stdout.write('\n');
    return 0;
  } catch (e) {
    if (e instanceof UsageError || e instanceof ModelError) {
      process.stderr.write(`Error: ${e.message}\n`);
      return e.exitCode;
    }
    process.stderr.write(`Error: ${String(e && e.message ? e.message : e).split('\n')[0]}\n`);
    return 1;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}

module.exports = { normalizeText, encodePrime, readModel, withFeedableInputs, parseArgs };
