// The vocabulary and metadata checks, and the quoting behind their messages (Python's repr).
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const V = require('../vocabulary.js');

const CONTROL =
  "a control character; a vocabulary holds text: any character but a surrogate or a control character other than '\\n' and '\\t'";

test("pyRepr quotes as Python's repr()", () => {
  const cases = [
    ['a', "'a'"],
    ["it's", '"it\'s"'],
    ['say "x" it\'s', "'say \"x\" it\\'s'"],
    ['\x1b[2J', "'\\x1b[2J'"],
    ['\t\n\r\\', "'\\t\\n\\r\\\\'"],
    ['\x7f\x9b\u00a0', "'\\x7f\\x9b\\xa0'"],
    ['\ud800', "'\\ud800'"],
    ['\u200d\u2028', "'\\u200d\\u2028'"],
    ['é🙂', "'é🙂'"],
    ['\u{e0001}', "'\\U000e0001'"],
    [null, 'None'],
    [true, 'True'],
    [5, '5'],
    [1.5e-7, '1.5e-07'],
    [1e100, '1e+100'],
    [0.25, '0.25'],
    [['a', 'b'], "['a', 'b']"],
    [{ a: [1] }, "{'a': [1]}"],
  ];
  for (const [value, repr] of cases) assert.equal(V.pyRepr(value), repr, JSON.stringify(value));
});

test('shown() cuts to 40 characters, counting code points', () => {
  assert.equal(V.shown('x'.repeat(38)), `'${'x'.repeat(38)}'`);
  assert.equal(V.shown('🙂'.repeat(50)), `'${'🙂'.repeat(36)}...`);
});

test('control characters and lone surrogates are refused, text is not', () => {
  for (const char of ['\x00', '\x1b', '\r', '\x7f', '\x9b']) assert.equal(V.characterProblem(char), CONTROL);
  assert.match(V.characterProblem('\udc00'), /lone surrogate/);
  assert.equal(V.characterProblem('ab'), 'not one character');
  assert.equal(V.characterProblem(7), 'not one character');
  for (const char of ['\n', '\t', ' ', '\u00a0', '\u200d', '\u202e', '\ue000', '🙂', 'é']) {
    assert.equal(V.characterProblem(char), null, JSON.stringify(char));
  }
});

test('parseVocabulary gives the Python messages', () => {
  const message = (raw) => {
    try {
      V.parseVocabulary(raw);
    } catch (e) {
      return e.message;
    }
    return null;
  };
  assert.equal(message('["a", "\\u001b"]'), `vocabulary entry 1 is '\\x1b', ${CONTROL}`);
  assert.equal(message('["a", "b", "a", "b"]'), "the vocabulary repeats ['a', 'b']");
  assert.equal(message('[]'), 'the vocabulary must be a non-empty JSON array of characters');
  assert.equal(message('["a"'), `the vocabulary is not JSON ('["a"')`);
  assert.match(message('['.repeat(33) + ']'.repeat(33)), /nests JSON arrays or objects more than 32 deep/);
  assert.equal(message('[["[[["]]'), "vocabulary entry 0 is ['[[['], not one character");
  assert.deepEqual(V.parseVocabulary('["\\n", "a"]').chars, ['\n', 'a']);
  assert.equal(V.parseVocabulary('["\\n", "a"]').ids.get('a'), 1);
  assert.throws(() => V.parseVocabulary('{"a": 1}'), V.VocabularyError);
});

test('readMetadata refuses what is not UTF-8, a repeated key, and too many bytes', () => {
  const fail = (m) => new Error(m);
  const bytes = (s) => new TextEncoder().encode(s);
  assert.deepEqual([...V.readMetadata([[bytes('a'), bytes('é')]], 'm.onnx', fail)], [['a', 'é']]);
  const bom = [[bytes('\ufeffk'), Uint8Array.from([0xef, 0xbb, 0xbf, 0x61, 0xff])]];
  assert.throws(() => V.readMetadata(bom, 'm.onnx', fail), /of metadata key '\\ufeffk' is not valid UTF-8 \(byte 0xff at offset 4 of '\\ufeffa\\\\xff'\)/);
  assert.throws(
    () => V.readMetadata([[bytes('a'), bytes('1')], [bytes('a'), bytes('2')]], 'm.onnx', fail),
    /^Error: m.onnx has metadata key 'a' more than once/,
  );
  assert.throws(
    () => V.readMetadata([[Uint8Array.from([0x6b, 0xff]), bytes('v')]], 'm.onnx', fail),
    { message: "m.onnx: a metadata key is not valid UTF-8 (byte 0xff at offset 1 of 'k\\\\xff'); re-export it with gru-edge export" },
  );
  assert.throws(() => V.readMetadata([[bytes('k'), new Uint8Array(2 ** 20)]], 'm.onnx', fail), /1,048,577 bytes of metadata, over the 1,048,576-byte limit/);
});

test('printable() and oneLine() escape what would drive a terminal', () => {
  assert.equal(V.printable('a\tb\nc\x1b]0;title\x07\x9b\ud800'), 'a\tb\nc\\x1b]0;title\\x07\\x9b\\ud800');
  assert.equal(V.oneLine('a\nb\x1bc\u2028'), 'a\\x0ab\\x1bc\\u2028');
  assert.equal(V.printable('Café 🙂 — “x”'), 'Café 🙂 — “x”');
});
