// The event loop's phases, seen from the callbacks they run: the main script,
// then its microtasks; a thread-pool read completes in the poll phase, where
// its own microtask runs first, then setImmediate (check), then setTimeout(0)
// (timers, next iteration).
'use strict';
const fs = require('fs');

console.log('main script');
process.nextTick(() => console.log('microtask (process.nextTick)'));
Promise.resolve().then(() => console.log('microtask (promise)'));

fs.readFile(__filename, () => {
  console.log('poll: the file read completes');
  setTimeout(() => console.log('timers: setTimeout(0)'), 0);
  setImmediate(() => console.log('check: setImmediate'));
  process.nextTick(() => console.log('microtask queued in the poll callback'));
});
