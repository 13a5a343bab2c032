// A thread-pool completion runs in the poll phase, so in the code it
// resumes, setImmediate (check phase) runs before setTimeout(0) (timers
// phase, next iteration): every time, whatever the thread's timing.
'use strict';
const fs = require('fs');
const crypto = require('crypto');
const { promisify } = require('util');

const readFile = promisify(fs.readFile);
const pbkdf2 = promisify(crypto.pbkdf2);

function immediateOrTimeout() {
  return new Promise((resolve) => {
    const order = [];
    const note = (what) => {
      order.push(what);
      if (order.length === 2) resolve(order.join(' then '));
    };
    setTimeout(() => note('timeout'), 0);
    setImmediate(() => note('immediate'));
  });
}

async function count(label, work) {
  const seen = new Map();
  for (let i = 0; i < 20; i++) {
    await work();
    const order = await immediateOrTimeout();
    seen.set(order, (seen.get(order) || 0) + 1);
  }
  for (const [order, n] of seen) console.log(`${label}: ${order} (${n} of 20)`);
}

(async () => {
  await count('thread pool, first API', () => readFile(__filename));
  await count('thread pool, second API', () => pbkdf2('secret', 'salt', 1, 32, 'sha256'));
})();
