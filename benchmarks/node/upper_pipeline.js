// Node 20 reference for benchmarks/streams.py: the Node guide's uppercase Transform
// in stream.pipeline from one file to another. Prints {"seconds": S, "bytes": N}.
const fs = require('fs');
const { Transform, pipeline } = require('stream');

const [src, dst] = process.argv.slice(2);
const upper = new Transform({
  transform(chunk, encoding, callback) {
    callback(null, chunk.toString().toUpperCase());
  },
});
const start = process.hrtime.bigint();
pipeline(fs.createReadStream(src), upper, fs.createWriteStream(dst), (err) => {
  if (err) { console.error(err); process.exit(1); }
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  console.log(JSON.stringify({ seconds, bytes: fs.statSync(dst).size }));
});
