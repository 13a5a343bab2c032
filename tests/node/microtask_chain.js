// A chain of microtasks (each queues the next) runs to its end before
// anything else: started in an immediate with a timer already due, and
// started in an I/O callback with an immediate scheduled.
'use strict';
const fs = require('fs');

function busyWait(ms) {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

function chain(name, n, last) {
  let i = 0;
  const tick = () => {
    i += 1;
    console.log(`${name} tick ${i}`);
    if (i < n) process.nextTick(tick);
    else if (last) last();
  };
  process.nextTick(tick);
}

setImmediate(() => {
  setTimeout(() => {
    console.log('timer');
    fs.readFile(__filename, () => {
      setImmediate(() => console.log('immediate'));
      chain('io', 6);
    });
  }, 1);
  busyWait(3);    // the timer is due when this iteration reaches its timers phase
  chain('immediate', 6);
});
