// Makes the golden GPT-2 encodings that tests/test_tokenizer_gpt2.c checks
// w2s against, with two GPT-2 encoders that share no code with w2s:
//   tiktoken 1.0.22 (OpenAI's Rust tiktoken compiled to WASM; its regex
//     engine's \s is Unicode White_Space, like the Python regex module GPT-2
//     was made with) -- the golden ids;
//   gpt-3-encoder 1.1.4 (a JavaScript port of GPT-2's encoder.py, with
//     encoder.json and vocab.bpe) -- a cross-check. JavaScript's \s differs
//     from Python's on two characters (U+0085 is no space to it, U+FEFF is),
//     so lines holding them are left out of the cross-check.
// Node is not needed to run the tests; only to remake these files. To rerun,
// from the repository root:
//   d=$(mktemp -d) && (cd "$d" && npm install tiktoken@1.0.22 gpt-3-encoder@1.1.4) &&
//   NODE_PATH="$d/node_modules" node tests/data/gpt2/make_golden.js
//
// Writes, beside this script:
//   golden.ids          the ids of golden.txt (UTF-8) encoded as one text
//   golden_invalid.bin  texts with invalid UTF-8, made from the list below
//   golden_invalid.ids  their ids: every byte that does not start a valid
//                       UTF-8 character is its own byte token, and each run of
//                       valid characters between such bytes is encoded alone
//                       (the rule of tokenizer.h, "GPT-2 pre-split"; neither
//                       reference takes invalid UTF-8 itself).
'use strict';
const fs = require('fs');
const path = require('path');
const { get_encoding } = require('tiktoken');
const gpt3 = require('gpt-3-encoder');

const dir = __dirname;
const enc = get_encoding('gpt2');

// Both references must use the vocabulary committed here: gpt-3-encoder
// ships the same two files, and tiktoken's token bytes must be those of
// encoder.json read through GPT-2's byte-to-unicode alphabet.
const shipped = path.dirname(require.resolve('gpt-3-encoder'));
for (const f of ['encoder.json', 'vocab.bpe'])
  if (!fs.readFileSync(path.join(shipped, f)).equals(fs.readFileSync(path.join(dir, f))))
    throw new Error(`gpt-3-encoder's ${f} differs from the committed one`);
const byteOf = new Map();
for (let b = 0, extra = 0; b < 256; b++) {
  const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  byteOf.set(String.fromCodePoint(printable ? b : 256 + extra++), b);
}
const encoder = JSON.parse(fs.readFileSync(path.join(dir, 'encoder.json'), 'utf8'));
for (const [token, id] of Object.entries(encoder)) {
  if (token === '<|endoftext|>') continue;
  const want = Buffer.from(Array.from(token, (c) => byteOf.get(c)));
  if (!Buffer.from(enc.decode_single_token_bytes(id)).equals(want))
    throw new Error(`tiktoken's token ${id} differs from encoder.json's ${JSON.stringify(token)}`);
}

function tiktokenIds(text) {
  return Array.from(enc.encode_ordinary(text));
}

function crossCheck(text, where) {
  if (/[\u0085\ufeff]/.test(text)) return 0;
  const a = tiktokenIds(text).join(' ');
  const b = gpt3.encode(text).join(' ');
  if (a !== b) throw new Error(`${where}: tiktoken ${a} != gpt-3-encoder ${b} for ${JSON.stringify(text)}`);
  return 1;
}

function writeIds(file, ids) {
  const lines = [];
  for (let i = 0; i < ids.length; i += 20) lines.push(ids.slice(i, i + 20).join(' '));
  fs.writeFileSync(path.join(dir, file), lines.join('\n') + '\n');
}

// golden.txt: one valid UTF-8 text.
const raw = fs.readFileSync(path.join(dir, 'golden.txt'));
const text = new TextDecoder('utf-8', { fatal: true }).decode(raw);
const ids = tiktokenIds(text);
let checked = 0;
text.split('\n').forEach((line, i) => { checked += crossCheck(line, `golden.txt line ${i + 1}`); });
writeIds('golden.ids', ids);
console.log(`golden.txt: ${raw.length} bytes, ${ids.length} ids; ${checked} lines cross-checked`);

// The length of the well-formed UTF-8 character at b[i] (Unicode Table 3-7),
// or 0 when none starts there.
function charLength(b, i) {
  const c = b[i];
  const cont = (j, lo = 0x80, hi = 0xbf) => j < b.length && b[j] >= lo && b[j] <= hi;
  if (c < 0x80) return 1;
  if (c >= 0xc2 && c <= 0xdf) return cont(i + 1) ? 2 : 0;
  if (c === 0xe0) return cont(i + 1, 0xa0) && cont(i + 2) ? 3 : 0;
  if ((c >= 0xe1 && c <= 0xec) || c === 0xee || c === 0xef) return cont(i + 1) && cont(i + 2) ? 3 : 0;
  if (c === 0xed) return cont(i + 1, 0x80, 0x9f) && cont(i + 2) ? 3 : 0;
  if (c === 0xf0) return cont(i + 1, 0x90) && cont(i + 2) && cont(i + 3) ? 4 : 0;
  if (c >= 0xf1 && c <= 0xf3) return cont(i + 1) && cont(i + 2) && cont(i + 3) ? 4 : 0;
  if (c === 0xf4) return cont(i + 1, 0x80, 0x8f) && cont(i + 2) && cont(i + 3) ? 4 : 0;
  return 0;
}

function encodeBytes(b) {
  const out = [];
  let start = 0;
  const flush = (end) => {
    if (end > start) {
      const seg = Buffer.from(b.subarray(start, end)).toString('utf8');
      crossCheck(seg, 'golden_invalid');
      out.push(...tiktokenIds(seg));
    }
  };
  for (let i = 0; i < b.length;) {
    const n = charLength(b, i);
    if (n > 0) { i += n; continue; }
    flush(i);
    out.push(enc.encode_single_token(new Uint8Array([b[i]])));
    start = ++i;
  }
  flush(b.length);
  return out;
}

// golden_invalid.bin: these cases joined by one newline, encoded as one text.
const cases = [
  'ff', '616263fe20646566', '8080', '63616620c3', '20e282', 'f09f98', 'c0af', 'e080af', 'eda080',
  'f4908080', 'f5', 'fe ff fe ff', '68656c6c6fff776f726c64', '6120ff2062', '2020ff2020', '27ff73',
  '3132803334', 'e4bda0e5a5bdffe4b896e7958c', 'f09f9880f09f98', 'c3a9c3', '00ff00', 'ff2020 0a',
  '2773ff', '20ff61', 'ffe2808b20', 'e2 80 e2 80 a6', '41c2', 'c2 41', 'e0a0', 'ed9fbf', 'efbfbf',
  'f48fbfbf', 'f0908080', '7465787420c0c1c2c3c4 2074657874',
];
const pieces = [];
cases.forEach((hex, k) => {
  if (k > 0) pieces.push(Buffer.from('\n'));
  pieces.push(Buffer.from(hex.replace(/ /g, ''), 'hex'));
});
const invalid = Buffer.concat(pieces);
const invalidIds = encodeBytes(invalid);
fs.writeFileSync(path.join(dir, 'golden_invalid.bin'), invalid);
writeIds('golden_invalid.ids', invalidIds);
console.log(`golden_invalid.bin: ${invalid.length} bytes, ${invalidIds.length} ids`);
enc.free();
