// A file read stream delivers each chunk from the poll phase, as every
// file-system completion: where its data is handled, a microtask runs
// first (even one queued after a zero-delay timer), then setImmediate,
// then setTimeout(0).
'use strict';
const fs = require('fs');

function firstChunkThen() {
  return new Promise((resolve) => {
    const stream = fs.createReadStream(__filename);
    stream.once('data', () => {
      stream.destroy();
      const order = [];
      const note = (what) => {
        order.push(what);
        if (order.length === 3) resolve(order.join(', '));
      };
      setTimeout(() => note('timeout'), 0);
      queueMicrotask(() => note('microtask'));
      setImmediate(() => note('immediate'));
    });
  });
}

(async () => {
  const seen = new Map();
  for (let i = 0; i < 20; i++) {
    const order = await firstChunkThen();
    seen.set(order, (seen.get(order) || 0) + 1);
  }
  for (const [order, n] of seen) console.log(`after a chunk is read: ${order} (${n} of 20)`);
})();
