// Node 20 reference for benchmarks/workers.py: worker_threads message passing.
//   node workers.js roundtrip N   main posts a small object, the worker posts it back, N times
//   node workers.js oneway N      main posts N small objects; the worker answers once at the end
// Prints {"seconds": S, "messages": N}. The message is the same small object as the Python
// side's: {i, op: "add", args: [1, 2]}.
const { Worker, isMainThread, parentPort, workerData } = require('worker_threads');

if (!isMainThread) {
  const { mode, n } = workerData;
  let seen = 0;
  parentPort.on('message', (msg) => {
    if (mode === 'roundtrip') {
      parentPort.postMessage(msg);
    } else if (++seen === n) {
      parentPort.postMessage(seen);
    }
  });
} else {
  const [mode, nText] = process.argv.slice(2);
  const n = Number(nText);
  const worker = new Worker(__filename, { workerData: { mode, n } });
  worker.once('online', () => {
    const start = process.hrtime.bigint();
    const finish = () => {
      const seconds = Number(process.hrtime.bigint() - start) / 1e9;
      console.log(JSON.stringify({ seconds, messages: n }));
      worker.terminate();
    };
    if (mode === 'roundtrip') {
      let i = 0;
      worker.on('message', () => {
        if (++i === n) finish();
        else worker.postMessage({ i, op: 'add', args: [1, 2] });
      });
      worker.postMessage({ i, op: 'add', args: [1, 2] });
    } else {
      worker.on('message', (count) => {
        if (count !== n) { console.error(`worker saw ${count} of ${n}`); process.exit(1); }
        finish();
      });
      for (let i = 0; i < n; i++) worker.postMessage({ i, op: 'add', args: [1, 2] });
    }
  });
}
