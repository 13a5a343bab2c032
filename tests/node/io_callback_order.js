// Inside an I/O callback (poll phase): the microtask runs first, then the
// immediate (check phase), then the zero-delay timer (timers phase).
'use strict';
const fs = require('fs');

fs.readFile(__filename, () => {
  console.log('io callback');
  // Scheduled in the reverse of the order they run.
  setTimeout(() => console.log('timer'), 0);
  setImmediate(() => console.log('immediate'));
  process.nextTick(() => console.log('microtask'));
});
