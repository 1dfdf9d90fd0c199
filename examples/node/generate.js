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
// A tiny app on the `gru-edge` package (js/ in the repository: the protocol, the model checks
// and the chunked generation, shared with gru-edge's web page) and onnxruntime-node; see
// README.md next to this file and docs/javascript.md.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const path = require('path');

const protocol = require('gru-edge');

const { UsageError, ModelError, checkOptions, encodePrime, printable, oneLine } = protocol;

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

// ---------------------------------------------------------------- the model

const MAX_BYTES = 256 * 1024 * 1024; // as gru-edge's loader: a GRU(512) over 200 characters is ~5 MB

// The file's bytes, refused as gru-edge sample refuses a path that is no model file.
function readModelFile(file) {
  let info;
  try {
    info = fs.statSync(file);
  } catch (e) {
    if (e.code === 'ENOENT') throw new ModelError(`model file not found: ${file}; check the path`);
    throw new ModelError(`cannot read model file ${file}: ${e.message}`);
  }
  if (info.isDirectory()) {
    const isRun = ['config.json', 'model.keras'].every((f) => fs.existsSync(path.join(file, f)));
    if (isRun) {
      throw new ModelError(
        `${file} is a training run directory, not a model file; export it first: gru-edge export ${file} --out model.onnx`,
      );
    }
    throw new ModelError(`${file} is a directory; pass the .onnx file inside it`);
  }
  if (!info.isFile()) throw new ModelError(`${file} is not a regular file; pass an .onnx file`);
  if (info.size === 0) throw new ModelError(`model file ${file} is empty; ${protocol.REEXPORT}`);
  const tooBig = () =>
    new ModelError(
      `model file ${file} is over the ${MAX_BYTES.toLocaleString('en-US')}-byte limit ` +
        `(${info.size.toLocaleString('en-US')} bytes); is it a gru-edge model?`,
    );
  if (info.size > MAX_BYTES) throw tooBig();
  let bytes;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    throw new ModelError(`cannot read model file ${file}: ${e.message}`);
  }
  if (bytes.length > MAX_BYTES) throw tooBig();
  return bytes;
}

async function loadModel(ort, file) {
  return protocol.openModel(ort, readModelFile(file), file, protocol.sessionOptions('cpu'));
}

// ---------------------------------------------------------------- main

async function main(argv) {
  let args;
  try {
    args = parseArgs(argv);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`Error: ${oneLine(e.message)}\n`);
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
      'Error: onnxruntime-node is not installed; run `npm install --onnxruntime-node-install=skip` next to this app\n',
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
        `model ${oneLine(args.model)}: state ${model.width} wide, ${model.vocab.chars.length} characters, on the CPU; seed ${seed}\n`,
      );
    }
    // printable(): the vocabulary checks leave no control character to escape; this makes sure
    process.stdout.write(printable(printed));
    const { chars } = model.vocab;
    const settings = { temperature: args.temperature, topK: args.topK, topP: args.topP, seed };
    for await (const ids of protocol.generate(ort, model, primeIds, args.length, settings)) {
      process.stdout.write(printable(ids.map((i) => chars[i]).join('')));
    }
    process.stdout.write('\n');
    return 0;
  } catch (e) {
    if (e instanceof UsageError || e instanceof ModelError) {
      process.stderr.write(`Error: ${oneLine(e.message)}\n`);
      return e.exitCode;
    }
    process.stderr.write(`Error: ${oneLine(String(e && e.message ? e.message : e).split('\n')[0])}\n`);
    return 1;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}

module.exports = { parseArgs, readModelFile };
