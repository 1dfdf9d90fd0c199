// The vocabulary and metadata checks of gru-edge's Python loader (runtime/vocabulary.py,
// runtime/contract.py), with the same messages, and the escaping that keeps a value from a file
// from driving the terminal it is printed to.
//
// The rule: a vocabulary entry is one character, and neither a lone surrogate nor a control
// character (Unicode category Cc) other than "\n" and "\t". Values are quoted in messages as
// Python's repr() quotes them (cut to 40 characters), so a JS message and a Python message about
// the same file are the same words. Plain JavaScript: it runs in Node.js and in the browser,
// where it is the global `gruEdgeVocabulary`.
(function (root, factory) {
  if (typeof module === 'object' && module.exports) module.exports = factory();
  else root.gruEdgeVocabulary = factory();
})(typeof self !== 'undefined' ? self : this, function () {
  'use strict';

  const MAX_NESTING = 32; // a vocabulary is one flat array; deeper JSON is refused before parsing
  const MAX_METADATA_BYTES = 1024 * 1024; // as the Python loader's default
  const SHOWN_LIMIT = 40;
  // Python's str.isprintable() is false for these categories (the ASCII space aside).
  const NOT_PRINTABLE = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}\p{Zs}]/u;
  const CONTROL = /\p{Cc}/u;
  const SURROGATE = /\p{Cs}/u;

  // ignoreBOM: a leading U+FEFF stays, as in Python's decode (TextDecoder would drop it)
  const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  const lenientUtf8 = new TextDecoder('utf-8', { ignoreBOM: true });

  class VocabularyError extends Error {}

  function hex(cp, width) {
    return cp.toString(16).padStart(width, '0');
  }

  function reprString(s) {
    const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
    let out = quote;
    for (const ch of s) {
      const cp = ch.codePointAt(0);
      if (ch === quote || ch === '\\') out += '\\' + ch;
      else if (ch === '\t') out += '\\t';
      else if (ch === '\n') out += '\\n';
      else if (ch === '\r') out += '\\r';
      else if (cp < 0x20 || cp === 0x7f) out += '\\x' + hex(cp, 2);
      else if (cp < 0x7f || !NOT_PRINTABLE.test(ch)) out += ch;
      else if (cp <= 0xff) out += '\\x' + hex(cp, 2);
      else if (cp <= 0xffff) out += '\\u' + hex(cp, 4);
      else out += '\\U' + hex(cp, 8);
    }
    return out + quote;
  }

  function reprNumber(n) {
    if (Number.isInteger(n) && Math.abs(n) < 1e16) return String(n);
    if (!Number.isFinite(n)) return n > 0 ? 'inf' : n < 0 ? '-inf' : 'nan';
    const a = Math.abs(n);
    if (a >= 1e-4 && a < 1e16) return String(n); // both languages write these digits plainly
    const [mantissa, exponent] = n.toExponential().split('e');
    const sign = exponent[0] === '-' ? '-' : '+';
    return `${mantissa}e${sign}${exponent.replace(/^[+-]/, '').padStart(2, '0')}`;
  }

  // Python's repr() of a value parsed from JSON.
  function pyRepr(value) {
    if (typeof value === 'string') return reprString(value);
    if (value === null) return 'None';
    if (value === true) return 'True';
    if (value === false) return 'False';
    if (typeof value === 'number') return reprNumber(value);
    if (Array.isArray(value)) return `[${value.map(pyRepr).join(', ')}]`;
    return `{${Object.entries(value)
      .map(([k, v]) => `${reprString(k)}: ${pyRepr(v)}`)
      .join(', ')}}`;
  }

  // gru-edge's shown(): repr(value) cut to `limit` characters, so that no character of a value
  // from a file (a newline, an escape) can break a one-line message.
  function shown(value, limit = SHOWN_LIMIT) {
    const chars = Array.from(pyRepr(value));
    return chars.length <= limit ? chars.join('') : chars.slice(0, limit - 3).join('') + '...';
  }

  // Why `char` cannot be a vocabulary entry, or null if it can.
  function characterProblem(char) {
    if (typeof char !== 'string' || Array.from(char).length !== 1) return 'not one character';
    if (SURROGATE.test(char)) return 'a lone surrogate, which is not a character and cannot be printed';
    if (char !== '\n' && char !== '\t' && CONTROL.test(char)) {
      return (
        'a control character; a vocabulary holds text: any character but a surrogate ' +
        "or a control character other than '\\n' and '\\t'"
      );
    }
    return null;
  }

  function byCodePoint(a, b) {
    const x = Array.from(a).map((c) => c.codePointAt(0));
    const y = Array.from(b).map((c) => c.codePointAt(0));
    for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i] - y[i];
    return x.length - y.length;
  }

  // How deep the JSON text's arrays and objects nest, counted up to just past MAX_NESTING.
  function nesting(raw) {
    const text = raw.replace(/"(?:[^"\\]|\\[^\n])*"/g, '');
    const opened = (text.match(/[[{]/g) || []).length;
    if (opened <= 1) return 1;
    let depth = 0;
    let deepest = 0;
    for (const bracket of text.match(/[[\]{}]/g)) {
      depth += bracket === '[' || bracket === '{' ? 1 : -1;
      deepest = Math.max(deepest, depth);
      if (depth > MAX_NESTING) break;
    }
    return deepest;
  }

  // The stored vocabulary (a JSON array of one-character strings) as {chars, ids}; a
  // VocabularyError with Python's Vocabulary.from_json message otherwise.
  function parseVocabulary(raw) {
    if (nesting(raw) > MAX_NESTING) {
      throw new VocabularyError(
        `the vocabulary nests JSON arrays or objects more than ${MAX_NESTING} deep; ` +
          'it must be one flat JSON array of one-character strings',
      );
    }
    let chars;
    try {
      chars = JSON.parse(raw);
    } catch (e) {
      throw new VocabularyError(`the vocabulary is not JSON (${shown(raw)})`);
    }
    if (!Array.isArray(chars) || chars.length === 0) {
      throw new VocabularyError('the vocabulary must be a non-empty JSON array of characters');
    }
    chars.forEach((char, position) => {
      const problem = characterProblem(char);
      if (problem) throw new VocabularyError(`vocabulary entry ${position} is ${shown(char)}, ${problem}`);
    });
    const ids = new Map();
    const repeated = new Set();
    chars.forEach((char, i) => (ids.has(char) ? repeated.add(char) : ids.set(char, i)));
    if (repeated.size) throw new VocabularyError(`the vocabulary repeats ${shown([...repeated].sort(byCodePoint))}`);
    return { chars, ids };
  }

  // Bytes as Python's bytes.decode("utf-8", errors="backslashreplace"): [text, offset of the
  // first byte that is not UTF-8 or -1].
  function decodeUtf8(bytes) {
    try {
      return [strictUtf8.decode(bytes), -1]; // the usual case, at native speed
    } catch (e) {
      // not UTF-8: found and escaped below, a byte at a time
    }
    let out = '';
    let first = -1;
    let i = 0;
    while (i < bytes.length) {
      const b = bytes[i];
      const size = b < 0x80 ? 1 : b >= 0xc2 && b <= 0xdf ? 2 : b >= 0xe0 && b <= 0xef ? 3 : b >= 0xf0 && b <= 0xf4 ? 4 : 0;
      const low = b === 0xe0 ? 0xa0 : b === 0xf0 ? 0x90 : 0x80;
      const high = b === 0xed ? 0x9f : b === 0xf4 ? 0x8f : 0xbf;
      let ok = size > 0 && i + size <= bytes.length;
      for (let k = 1; ok && k < size; k++) {
        const c = bytes[i + k];
        ok = k === 1 ? c >= low && c <= high : c >= 0x80 && c <= 0xbf;
      }
      if (!ok) {
        if (first < 0) first = i;
        out += '\\x' + hex(b, 2);
        i += 1;
        continue;
      }
      out += lenientUtf8.decode(bytes.subarray(i, i + size));
      i += size;
    }
    return [out, first];
  }

  // metadata_props entries ([key bytes, value bytes]) as a Map, refused as the Python loader
  // refuses them: over `maxBytes` in all, a key or value that is not UTF-8, a repeated key.
  // `fail(message)` makes the error to throw; messages start with `source`.
  function readMetadata(entries, source, fail, maxBytes = MAX_METADATA_BYTES) {
    const reexport = 're-export it with gru-edge export';
    const size = entries.reduce((n, [k, v]) => n + k.length + v.length, 0);
    if (size > maxBytes) {
      const fmt = (n) => n.toLocaleString('en-US');
      throw fail(`${source} carries ${fmt(size)} bytes of metadata, over the ${fmt(maxBytes)}-byte limit; ${reexport}`);
    }
    const decoded = (raw, what) => {
      const [text, bad] = decodeUtf8(raw);
      if (bad < 0) return text;
      throw fail(
        `${source}: ${what} is not valid UTF-8 (byte 0x${hex(raw[bad], 2)} at offset ${bad} of ${shown(text)}); ${reexport}`,
      );
    };
    const metadata = new Map();
    for (const [rawKey, rawValue] of entries) {
      const key = decoded(rawKey, 'a metadata key');
      const value = decoded(rawValue, `the value of metadata key ${shown(key)}`);
      if (metadata.has(key)) {
        throw fail(`${source} has metadata key ${shown(key)} more than once, so which value holds is ambiguous; ${reexport}`);
      }
      metadata.set(key, value);
    }
    return metadata;
  }

  function escaped(ch) {
    const cp = ch.codePointAt(0);
    return cp <= 0xff ? '\\x' + hex(cp, 2) : '\\u' + hex(cp, 4);
  }

  // Text for a terminal: control characters other than "\n" and "\t", and lone surrogates, as
  // \xNN or \uNNNN escapes. A vocabulary that passed the checks yields text this leaves as it is.
  function printable(text) {
    return text.replace(/[\p{Cc}\p{Cs}]/gu, (ch) => (ch === '\n' || ch === '\t' ? ch : escaped(ch)));
  }

  // A message on one line: every control character (newlines too) and lone surrogate escaped.
  function oneLine(text) {
    return text.replace(/[\p{Cc}\p{Cs}\u2028\u2029]/gu, escaped);
  }

  return {
    MAX_NESTING,
    MAX_METADATA_BYTES,
    VocabularyError,
    pyRepr,
    shown,
    characterProblem,
    parseVocabulary,
    readMetadata,
    decodeUtf8,
    printable,
    oneLine,
  };
});
