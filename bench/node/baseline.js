// baseline.js — the reference side of bench/bench_tokenizer.c: Hugging Face `tokenizers` (the
// Rust library transformers' fast tokenizers run, through its Node binding) loading the same
// tokenizer.json and encoding the same text with add_special_tokens=false.
//
// usage: node baseline.js TOKENIZER_JSON TEXT_FILE REPS IDS_OUT
// Encodes the text twice over: as one string, and paragraph by paragraph (cut after every run of
// two or more newlines, as bench_tokenizer.c does), one call each. Prints one JSON line
// {"load_ms":[...],"encode_ms":[...],"chunks_ms":[...],"n_chunks":C,"n_ids":N} and writes the
// ids (whole text, then all chunks) to IDS_OUT as little-endian int32, so the benchmark can
// check they are identical to its own.
// Timings include the binding's UTF-16 -> UTF-8 conversion of the text (a few ms per MB).
'use strict';
const fs = require('fs');
const { Tokenizer } = require('tokenizers');

async function main() {
  const [tokPath, textPath, repsArg, idsOut] = process.argv.slice(2);
  if (!idsOut) {
    console.error('usage: node baseline.js TOKENIZER_JSON TEXT_FILE REPS IDS_OUT');
    process.exit(2);
  }
  const reps = Math.max(1, parseInt(repsArg, 10) || 1);
  const text = fs.readFileSync(textPath, 'utf8');
  const ms = (t0) => Number(process.hrtime.bigint() - t0) / 1e6;

  const loadMs = [];
  let tok = null;
  for (let i = 0; i < reps; i++) {
    const t0 = process.hrtime.bigint();
    tok = Tokenizer.fromFile(tokPath);
    loadMs.push(ms(t0));
  }
  const opts = { addSpecialTokens: false };
  const encodeMs = [];
  let ids = null;
  for (let i = 0; i < reps; i++) {
    const t0 = process.hrtime.bigint();
    const enc = await tok.encode(text, null, opts);
    encodeMs.push(ms(t0));
    ids = enc.getIds();
  }
  const chunks = text.split(/(?<=\n\n)(?!\n)/);
  const chunksMs = [];
  let chunkIds = null;
  for (let i = 0; i < reps; i++) {
    chunkIds = [];
    const t0 = process.hrtime.bigint();
    for (const c of chunks) {
      const enc = await tok.encode(c, null, opts);
      chunkIds.push(enc.getIds());
    }
    chunksMs.push(ms(t0));
  }
  const all = ids.concat(...chunkIds);
  const buf = Buffer.alloc(all.length * 4);
  all.forEach((id, i) => buf.writeInt32LE(id, i * 4));
  fs.writeFileSync(idsOut, buf);
  console.log(JSON.stringify({ load_ms: loadMs, encode_ms: encodeMs, chunks_ms: chunksMs,
                               n_chunks: chunks.length, n_ids: ids.length }));
}

main().catch((e) => {
  console.error(String(e && e.stack ? e.stack : e));
  process.exit(1);
});
