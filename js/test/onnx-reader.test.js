// The protobuf reader: external data wherever ONNX lets a tensor live, the metadata as stored,
// the generator's defaults taken out, and broken bytes refused with the Python reader's words.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const R = require('../onnx-reader.js');

const { utf8, varint, bytes, field, metadata } = require('../test-support/protobuf.js');
const number = (num, value) => bytes(varint(num << 3), varint(value));
// a TensorProto: its name, and its data_location EXTERNAL or four raw bytes
const tensor = (name, external = false) =>
  bytes(field(8, utf8(name)), external ? number(14, 1) : field(9, bytes([0, 0, 128, 63])));
const graph = (...parts) => bytes(...parts);
const model = (graphBytes, ...rest) => bytes(number(1, 8), field(7, graphBytes), field(8, bytes(field(1, utf8('')), number(2, 18))), ...rest);

test('metadata entries, opset and IR version are read as stored', () => {
  const facts = R.inspectModel(model(graph(), metadata('a', 'é'), metadata('a', '2')));
  assert.equal(facts.irVersion, 8);
  assert.equal(facts.opset, 18);
  assert.deepEqual(
    facts.metadata.map(([k, v]) => [new TextDecoder().decode(k), new TextDecoder().decode(v)]),
    [['a', 'é'], ['a', '2']],
  );
  assert.deepEqual(facts.externalTensors, []);
});

test('external data is found in initializers, attributes, subgraphs, functions and training info', () => {
  const ext = (name) => tensor(name, true);
  const attrTensor = (name) => field(1, field(5, field(5, ext(name)))); // node.attribute.t
  const subgraph = (name) => field(1, field(5, field(6, field(5, ext(name))))); // node.attribute.g.initializer
  const places = [
    model(graph(field(5, ext('init')))),
    model(graph(field(15, field(1, ext('sparse'))))),
    model(graph(attrTensor('attr'))),
    model(graph(subgraph('sub'))),
    model(graph(), field(25, field(7, field(5, field(5, ext('fn')))))),
    model(graph(), field(20, field(1, field(5, ext('training'))))),
    model(graph(field(5, bytes(field(8, utf8('listed')), field(13, field(1, utf8('location'))))))),
  ];
  const found = places.map((m) => R.inspectModel(m).externalTensors);
  assert.deepEqual(found, [['init'], ['sparse'], ['attr'], ['sub'], ['fn'], ['training'], ['listed']]);
});

test('broken bytes are refused with the Python reader words', () => {
  const refused = (data) => {
    try {
      R.inspectModel(Uint8Array.from(data));
    } catch (e) {
      assert.ok(e instanceof R.ProtoError);
      return e.message;
    }
    return null;
  };
  assert.equal(refused([0x08, 0x07, 0x00, 0x01]), 'field number 0 at byte 3');
  assert.equal(refused([0x08, 0x07, 0x0f]), 'unsupported wire type 7 at byte 3');
  assert.equal(refused([0x08]), 'truncated or overlong varint at byte 1');
  assert.equal(refused([0x3a, 0x05, 0x01]), 'field 7 runs past the end of its message at byte 2');
  assert.equal(refused([0x09, 0x01]), 'field 1 runs past the end of its message');
  let deep = graph();
  for (let i = 0; i < 70; i++) deep = graph(field(1, field(5, field(6, deep))));
  assert.equal(refused(model(deep)), 'graphs nested more than 64 deep');
});

test('withFeedableInputs drops only the initializers that are also inputs', () => {
  const input = (name) => field(11, field(1, utf8(name)));
  const g = graph(input('ids'), input('steps'), field(5, tensor('steps')), field(5, tensor('W')), field(5, tensor('seed')));
  const original = model(g, metadata('format', 'gru-edge/2'));
  const facts = R.inspectModel(original);
  const feedable = R.withFeedableInputs(original, facts.graph, ['steps', 'seed', 'temperature']);
  const after = R.inspectModel(feedable);
  const [, start, end] = after.graph;
  const names = R.fields(feedable, start, end)
    .filter(([num]) => num === 5)
    .map(([, , a, b]) => R.fields(feedable, a, b).find(([n]) => n === 8))
    .map(([, , a, b]) => new TextDecoder().decode(feedable.subarray(a, b)));
  assert.deepEqual(names, ['W', 'seed']); // 'seed' is no input here: it stays
  assert.equal(after.metadata.length, 1);
  assert.equal(after.opset, 18);
});

test('metadata is refused by its running size and count, as it is read', () => {
  const limited = (data, limits) => {
    try {
      R.inspectModel(data, limits);
    } catch (e) {
      assert.ok(e instanceof R.MetadataLimitError);
      return e.message;
    }
    return null;
  };
  const three = model(graph(), metadata('a', 'xx'), metadata('b', 'yy'), metadata('c', 'zz'));
  assert.equal(limited(three, { maxBytes: 8, maxEntries: 10 }), 'carries 9+ bytes of metadata, over the 8-byte limit');
  assert.equal(limited(three, { maxBytes: 100, maxEntries: 2 }), 'carries 3+ metadata entries, over the 2-entry limit');
  assert.equal(limited(three, { maxBytes: 9, maxEntries: 3 }), null);
  assert.deepEqual(R.METADATA_LIMITS, { maxBytes: 1048576, maxEntries: 4096 });
});
