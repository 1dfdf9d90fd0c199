// The protocol's checks that need no onnxruntime: settings, the prime, and the model file's
// refusals before a session is made.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const P = require('..');

const { utf8, varint, bytes, field, metadata } = require('../test-support/protobuf.js');
const input = (name) => field(11, field(1, utf8(name)));
const fileWith = (...meta) => bytes(field(7, bytes(input('ids'))), ...meta);
const refusal = (data) => {
  try {
    P.inspectModel(data, 'm.onnx');
  } catch (e) {
    assert.ok(e instanceof P.ModelError, e.stack);
    return e.message;
  }
  return null;
};

test('the package is the protocol, with its checks', () => {
  for (const name of ['inspectModel', 'openModel', 'sessionOptions', 'generate', 'encodePrime', 'checkOptions', 'printable', 'oneLine']) {
    assert.equal(typeof P[name], 'function', name);
  }
  assert.equal(P.FORMAT, 'gru-edge/2');
  assert.deepEqual(P.sessionOptions('cpu').extra, { session: { disable_prepacking: '1' } });
});

test('inspectModel: a good file, then each refusal in the Python loader words', () => {
  const good = fileWith(metadata('format', 'gru-edge/2'), metadata('vocabulary', '["\\n", "a"]'));
  const { vocab, metadata: meta } = P.inspectModel(good, 'm.onnx');
  assert.deepEqual(vocab.chars, ['\n', 'a']);
  assert.equal(meta.get('format'), 'gru-edge/2');
  const REEXPORT = 're-export it with gru-edge export';
  assert.equal(
    refusal(fileWith(metadata('format', 'gru-edge/2'), metadata('vocabulary', '["a", "\\u001b[2J"]'))),
    `m.onnx: vocabulary entry 1 is '\\x1b[2J', not one character; ${REEXPORT}`,
  );
  assert.equal(
    refusal(fileWith(metadata('format', 'gru-edge/2'), metadata('vocabulary', '["a", "\\u009b"]'))),
    "m.onnx: vocabulary entry 1 is '\\x9b', a control character; a vocabulary holds text: any character but a " +
      `surrogate or a control character other than '\\n' and '\\t'; ${REEXPORT}`,
  );
  assert.equal(refusal(fileWith(metadata('format', 'gru-edge/2'))), `m.onnx has no 'vocabulary' metadata; ${REEXPORT}`);
  assert.match(refusal(fileWith(metadata('vocabulary', '["a"]'))), /^m.onnx has no format in its metadata, and this client needs gru-edge\/2/);
  assert.match(refusal(fileWith(metadata('vocabulary', '["a"]'), metadata('format', 'gru-edge/1'))), /has format 'gru-edge\/1'/);
  assert.equal(refusal(Uint8Array.from([0x08, 0x08])), `m.onnx is not an ONNX model (it holds no graph); ${REEXPORT}`);
  assert.equal(
    refusal(Uint8Array.from([0x50, 0x4b, 0x03, 0x04, 0, 0])),
    'm.onnx is a Keras model (a zip archive), not an ONNX model; export its run directory to one: gru-edge export RUN_DIR --out model.onnx',
  );
  const external = bytes(field(7, field(5, bytes(field(8, utf8('w\x1b')), varint(14 << 3), varint(1)))));
  assert.equal(
    refusal(external),
    `m.onnx stores tensors as external data ('w\\x1b'), which gru-edge refuses for files from elsewhere; ${REEXPORT} (it writes one self-contained file)`,
  );
});

test('settings are checked as gru-edge sample checks them', () => {
  const settings = P.checkOptions({ length: '10', temperature: '0.5', topK: '3', topP: '0.9', seed: '7' });
  assert.deepEqual(settings, { prime: undefined, length: 10, temperature: 0.5, topK: 3n, topP: 0.9, seed: 7n });
  assert.throws(() => P.checkOptions({ topP: '1.5' }), { message: '--top-p must be in (0, 1], got "1.5"; try 0.9' });
  assert.throws(() => P.checkOptions({ seed: String(2n ** 63n) }), P.UsageError);
});

test('the prime is normalised and encoded by code point; unknown characters are named', () => {
  const vocab = { chars: ['\n', 'a', 'é', '🙂'], ids: new Map([['\n', 0], ['a', 1], ['é', 2], ['🙂', 3]]) };
  assert.deepEqual(P.encodePrime('\ufeffa\r\ne\u0301🙂', vocab), [[1, 0, 2, 3], 'a\né🙂']);
  assert.deepEqual(P.encodePrime('', vocab), [[0], '']);
  assert.throws(() => P.encodePrime('ab\x1b', vocab), {
    message: "the prime has 2 character(s) the model's vocabulary lacks: '\\x1b', 'b'; remove them",
  });
});
