// An immediate scheduled by an immediate runs in the next iteration (after
// this iteration's timers phase); a microtask queued by the first immediate
// runs before the second immediate.
'use strict';

function busyWait(ms) {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

setImmediate(() => {
  console.log('immediate 1');
  setImmediate(() => console.log('immediate 3 (next iteration)'));
  setTimeout(() => console.log('timer (this iteration)'), 1);
  busyWait(3);  // the timer is due when this iteration reaches its timers phase
  process.nextTick(() => console.log('microtask from immediate 1'));
});
setImmediate(() => console.log('immediate 2'));
