// A microtask queued by a timer runs before the next timer due at the same
// time.
'use strict';

function busyWait(ms) {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

setTimeout(() => {
  console.log('timer 1');
  Promise.resolve().then(() => console.log('microtask from timer 1'));
}, 5);
setTimeout(() => console.log('timer 2'), 5);
// Every timer is overdue when the first timers phase runs, so they all run
// in that phase whatever the clock did between the setTimeout calls.
busyWait(10);
