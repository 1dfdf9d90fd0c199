// gru-edge's web page: loads onnxruntime-web and the model, shows the model's facts, and streams
// the text of the model's in-graph generator into #output: exactly what `gru-edge sample` writes
// for the same settings (without its final newline). The protocol is protocol.js's (with
// onnx-reader.js and vocabulary.js): copies of the JavaScript package in js/, which
// examples/node uses too.
//
// For scripts and headless browsers: the settings come from the URL query (prime, length,
// temperature, top_k, top_p, seed, autostart=1); #output holds the prime plus the generated
// text and nothing else; #status has data-state loading | ready | running | done | error, and
// when done data-chars-per-second and data-steady-chars-per-second (NaN when the run was
// shorter than the warm-up); #error holds the message of anything that went wrong.

// The one place the CDN's onnxruntime-web version is pinned (the page is tested with it).
const ORT_VERSION = '1.30.0';
const ORT_CDN = `https://cdn.jsdelivr.net/npm/onnxruntime-web@${ORT_VERSION}/dist/`;
const ORT_MODULE = 'ort.wasm.min.mjs'; // the WASM-only build: no WebGPU/WebGL code to load
const WARMUP_MS = 1000; // V8 tiers up the WASM during the first second or so: steady speed after it
const YIELD_MS = 50; // give the browser a chance to paint at least this often while generating
// The most characters one run of the page generates (~15 s at the measured 50-80k chars/s): a
// page opened with length=1000000000000 would otherwise generate until the tab is closed.
const MAX_LENGTH = 1000000;

const P = globalThis.gruEdgeProtocol;
const $ = (id) => document.getElementById(id);
const NAMES = { length: 'length', temperature: 'temperature', topK: 'top_k', topP: 'top_p', seed: 'seed' };
const FIELDS = ['prime', 'length', 'temperature', 'top_k', 'top_p', 'seed'];

let ort = null;
let model = null;

function setStatus(state, text) {
  const status = $('status');
  status.dataset.state = state;
  status.textContent = text;
}

function showError(error) {
  const message = error && error.message ? error.message : String(error);
  $('error').textContent = message.split('\n')[0];
  $('error').hidden = false;
  setStatus('error', 'error');
}

function placeholder(value) {
  return !value || value.startsWith('__'); // not filled in: the page was not written by gru-edge web
}

// An absolute URL: onnxruntime-web resolves a relative wasmPaths against its own module's URL,
// not the page's, so a page-relative "ort/" would point at ort/ort/.
function ortBase() {
  const configured = document.body.dataset.ortBase;
  return new URL(placeholder(configured) ? ORT_CDN : configured, document.baseURI).href;
}

async function loadOrt() {
  const base = ortBase();
  let module;
  try {
    module = await import(base + ORT_MODULE);
  } catch (e) {
    throw new Error(`cannot load onnxruntime-web from ${base}${ORT_MODULE}: ${e.message}`);
  }
  const loaded = module.default ?? module;
  loaded.env.wasm.wasmPaths = base;
  loaded.env.wasm.numThreads = 1; // one thread: no SharedArrayBuffer, so no cross-origin isolation
  loaded.env.wasm.proxy = false;
  loaded.env.logLevel = 'error';
  return loaded;
}

async function loadModel(name) {
  let response;
  try {
    response = await fetch(name);
  } catch (e) {
    throw new Error(`cannot fetch the model ${name}: ${e.message}`);
  }
  if (!response.ok) throw new Error(`cannot fetch the model ${name}: HTTP ${response.status}`);
  const bytes = new Uint8Array(await response.arrayBuffer());
  // Check the bytes before loading onnxruntime: a bad file gets its message at once.
  P.inspectModel(bytes, name);
  ort = await loadOrt();
  const opened = await P.openModel(ort, bytes, name, P.sessionOptions('wasm'));
  return { ...opened, size: bytes.length };
}

function showFacts(loaded, name) {
  const meta = loaded.metadata;
  const bpc = Number(meta.get('best_val_bpc'));
  const facts = [
    ['vocabulary', `${loaded.vocab.chars.length} characters`],
    ['units', meta.get('units') ?? '?'],
    ['layers', meta.get('layers') ?? '1'],
    ['training bits/char', Number.isFinite(bpc) ? bpc.toFixed(3) : 'unknown'],
    ['format', meta.get('format')],
    ['file', `${(loaded.size / 1024).toFixed(0)} KiB`],
  ];
  const list = $('facts');
  list.replaceChildren();
  for (const [term, value] of facts) {
    const row = document.createElement('div');
    const dt = document.createElement('dt');
    const dd = document.createElement('dd');
    dt.textContent = term;
    dd.textContent = value;
    row.append(dt, dd);
    list.append(row);
  }
  const title = document.body.dataset.title;
  $('model-name').textContent = placeholder(title) ? name : title;
}

function settingsFromForm() {
  const raw = {};
  const pick = (field, key) => {
    const value = $(field).value;
    if (value.trim() !== '') raw[key] = value;
  };
  raw.prime = $('prime').value;
  pick('length', 'length');
  pick('temperature', 'temperature');
  pick('top_k', 'topK');
  pick('top_p', 'topP');
  pick('seed', 'seed');
  const options = P.checkOptions(raw, NAMES);
  if (options.length > MAX_LENGTH) {
    throw new Error(`length must be at most ${MAX_LENGTH.toLocaleString('en')} on this page, got ${options.length.toLocaleString('en')}; gru-edge sample writes longer texts`);
  }
  return options;
}

function randomSeed() {
  // as gru-edge and the Node client draw one: 32 random bits, shown so the text can be repeated
  return BigInt(crypto.getRandomValues(new Uint32Array(1))[0]);
}

const nextTask = () => new Promise((resolve) => setTimeout(resolve, 0));

async function run() {
  $('error').hidden = true;
  const button = $('generate');
  button.disabled = true;
  try {
    const options = settingsFromForm();
    if (options.seed === null) {
      options.seed = randomSeed();
      $('seed').value = String(options.seed);
    }
    const [primeIds, printed] = P.encodePrime(options.prime, model.vocab);
    const output = $('output');
    output.textContent = printed;
    setStatus('running', 'generating…');
    const { chars } = model.vocab;
    const settings = { temperature: options.temperature, topK: options.topK, topP: options.topP, seed: options.seed };
    let done = 0;
    let warm = null; // [time, characters] when the warm-up ended
    const start = performance.now();
    let lastYield = start;
    for await (const ids of P.generate(ort, model, primeIds, options.length, settings)) {
      output.append(ids.map((i) => chars[i]).join(''));
      done += ids.length;
      const now = performance.now();
      if (warm === null && now - start >= WARMUP_MS) warm = [now, done];
      if (now - lastYield >= YIELD_MS) {
        setStatus('running', `generating… ${done.toLocaleString('en')} / ${options.length.toLocaleString('en')} chars, ${rate(done, now - start)}`);
        await nextTask(); // a task boundary, so the browser can paint the text so far
        lastYield = performance.now();
      }
    }
    const end = performance.now();
    const perSecond = done / ((end - start) / 1000);
    const steady = warm && done > warm[1] ? (done - warm[1]) / ((end - warm[0]) / 1000) : NaN;
    const status = $('status');
    setStatus(
      'done',
      `done: ${done.toLocaleString('en')} chars in ${((end - start) / 1000).toFixed(3)} s, ${rate(done, end - start)}` +
        (Number.isFinite(steady) ? `; after the first ${WARMUP_MS / 1000} s: ${Math.round(steady).toLocaleString('en')} chars/s` : ''),
    );
    status.dataset.charsPerSecond = String(perSecond);
    status.dataset.steadyCharsPerSecond = String(steady);
    status.dataset.seed = String(options.seed);
  } catch (e) {
    showError(e);
  } finally {
    button.disabled = false;
  }
}

function rate(chars, ms) {
  return ms > 0 ? `${Math.round(chars / (ms / 1000)).toLocaleString('en')} chars/s` : '—';
}

async function main() {
  const query = new URLSearchParams(location.search);
  for (const field of FIELDS) {
    if (query.has(field)) $(field).value = query.get(field);
  }
  const configured = document.body.dataset.model;
  const name = placeholder(configured) ? 'model.onnx' : configured;
  try {
    const started = performance.now();
    model = await loadModel(name);
    showFacts(model, name);
    setStatus('ready', `ready: model loaded in ${((performance.now() - started) / 1000).toFixed(2)} s`);
  } catch (e) {
    showError(e);
    return;
  }
  $('generate').disabled = false;
  $('controls').addEventListener('submit', (event) => {
    event.preventDefault();
    run();
  });
  if (query.get('autostart') === '1') await run();
}

main();
